// A blocking TCP client with poll()-based timeouts, and the SPOP handshake on it.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A blocking TCP client with poll()-based timeouts and an input buffer.
final class TCPConn {
    let fd: Int32
    private var buffer: [UInt8] = []
    private var closed = false
    private(set) var eof = false

    /// `source`: the local address to connect from (another one of 127.0.0.0/8
    /// makes another client address for HAProxy's `src`).
    init(port: UInt16, source: String? = nil, timeout: Double = 5) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw WireError("socket: errno \(errno)") }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        if let source {
            var local = loopbackAddress(port: 0, host: source)
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else {
                let e = errno
                close(fd)
                closed = true
                throw WireError("bind \(source): errno \(e)")
            }
        }
        var addr = loopbackAddress(port: port)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 {
            let e = errno
            close(fd)
            closed = true
            throw WireError("connect 127.0.0.1:\(port): errno \(e)")
        }
    }

    /// A connection accepted by a server of the test.
    init(accepted fd: Int32) { self.fd = fd }

    deinit { shutdownAndClose() }

    func shutdownAndClose() {
        if !closed { closed = true; close(fd) }
    }

    /// Write everything; returns false when the peer is gone (EPIPE/ECONNRESET).
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { p in
                Glibc.send(fd, p.baseAddress, p.count, Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                if errno == EINTR { continue }
                return false
            }
            off += n
        }
        return true
    }

    /// Read whatever arrives within `timeout`; false on timeout, true when data or EOF came.
    private func fill(deadline: Double) -> Bool {
        if eof { return true }
        let remaining = deadline - nowSeconds()
        if remaining <= 0 { return false }
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let rc = poll(&pfd, 1, Int32(max(1, remaining * 1000)))
        if rc < 0 { if errno == EINTR { return fill(deadline: deadline) }; eof = true; return true }
        if rc == 0 { return false }
        var tmp = [UInt8](repeating: 0, count: 65536)
        let n = tmp.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 {
            if n < 0 && errno == EINTR { return fill(deadline: deadline) }
            eof = true   // clean EOF or ECONNRESET: the peer closed
            return true
        }
        buffer += tmp[0..<n]
        return true
    }

    /// Exactly `n` bytes, or nil on EOF; throws on timeout.
    func readExactly(_ n: Int, timeout: Double = 5) throws -> [UInt8]? {
        let deadline = nowSeconds() + timeout
        while buffer.count < n {
            if eof { return nil }
            if !fill(deadline: deadline) { throw WireError("timeout waiting for \(n) bytes (have \(buffer.count))") }
        }
        let out = Array(buffer[0..<n])
        buffer.removeFirst(n)
        return out
    }

    /// The next SPOP frame, or nil if the peer closed first; throws on timeout.
    func readFrame(timeout: Double = 5) throws -> SpopFrame? {
        guard let lenBytes = try readExactly(4, timeout: timeout) else { return nil }
        let len = lenBytes.reduce(0) { ($0 << 8) | Int($1) }
        guard let body = try readExactly(len, timeout: timeout) else {
            throw WireError("EOF inside a frame of \(len) bytes")
        }
        return try SpopFrame.decode(body: body)
    }

    /// Like readFrame, but the frame is required.
    func expectFrame(timeout: Double = 5, _ what: String = "frame") throws -> SpopFrame {
        guard let f = try readFrame(timeout: timeout) else { throw WireError("connection closed while waiting for \(what)") }
        return f
    }

    /// Wait until the peer closes; returns the bytes received meanwhile. Throws on timeout.
    func waitForClose(timeout: Double = 5) throws -> [UInt8] {
        let deadline = nowSeconds() + timeout
        while !eof {
            if !fill(deadline: deadline) { throw WireError("peer did not close within \(timeout)s") }
        }
        defer { buffer.removeAll() }
        return buffer
    }

    /// Read until "\r\n\r\n"; returns the head (without the terminator) or nil on EOF.
    func readHTTPHead(timeout: Double) throws -> String? {
        let deadline = nowSeconds() + timeout
        while true {
            if let r = findCRLFCRLF() {
                let head = String(decoding: buffer[0..<r], as: UTF8.self)
                buffer.removeFirst(r + 4)
                return head
            }
            if eof { return nil }
            if !fill(deadline: deadline) { throw WireError("timeout waiting for an HTTP response head") }
        }
    }

    /// One CRLF-terminated line (without the CRLF), or nil on EOF.
    func readLine(timeout: Double) throws -> String? {
        let deadline = nowSeconds() + timeout
        while true {
            if buffer.count >= 2, let i = (0..<(buffer.count - 1)).first(where: { buffer[$0] == 13 && buffer[$0 + 1] == 10 }) {
                let line = String(decoding: buffer[0..<i], as: UTF8.self)
                buffer.removeFirst(i + 2)
                return line
            }
            if eof { return nil }
            if !fill(deadline: deadline) { throw WireError("timeout waiting for a line") }
        }
    }

    private func findCRLFCRLF() -> Int? {
        guard buffer.count >= 4 else { return nil }
        for i in 0...(buffer.count - 4) where buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 {
            return i
        }
        return nil
    }
}

// MARK: - SPOP client conveniences

extension TCPConn {
    /// HAPROXY-HELLO (default: as 2.6 sends it) and the agent's AGENT-HELLO.
    func handshake(_ hello: [UInt8] = haproxyHello(capabilities: "pipelining,async"), timeout: Double = 5) throws -> SpopFrame {
        send(hello)
        let reply = try expectFrame(timeout: timeout, "AGENT-HELLO")
        guard reply.type == SpopType.agentHello.rawValue else {
            throw WireError("expected AGENT-HELLO, got \(reply) \((try? reply.kvList()).map { "\($0)" } ?? "")")
        }
        return reply
    }
}
