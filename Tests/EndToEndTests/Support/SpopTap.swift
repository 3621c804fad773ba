// A transparent TCP relay between HAProxy and the agent that parses the SPOP
// frame headers going through it, so tests can prove what HAProxy really did on
// the wire (fragmented a NOTIFY, pipelined several NOTIFYs on one connection).
// Bytes are forwarded unchanged.

import Foundation
#if canImport(Glibc)
import Glibc
#endif

final class SpopTap: @unchecked Sendable {
    struct Stats {
        var connections = 0
        var framesByType: [UInt8: Int] = [:]
        var notifyWithoutFin = 0          // first fragments
        var unsetFrames = 0               // continuation fragments (incl. aborts)
        var acks = 0
        /// ACKs that came back on another connection than their NOTIFY (async).
        var acksOnOtherConnection = 0
        /// Connections each engine-id opened (HAPROXY-HELLO engine-id -> count).
        var connectionsByEngine: [String: Int] = [:]
        var maxInFlightPerConnection = 0  // complete NOTIFYs not yet ACKed on one connection
        var haproxyDisconnectStatuses: [Int64] = []
        var agentDisconnectStatuses: [Int64] = []
        var healthCheckHellos = 0
        var notifyStreamIDs: Set<UInt64> = []  // HAProxy 3.1+: odd
        var notifyStreams: Set<[UInt64]> = []  // [tap connection, stream-id]
        var notifyFrameIDs: Set<UInt64> = []   // HAProxy 3.1+: always 1
        var closedConnections = 0              // relayed connections that ended
    }

    let port: UInt16
    private let upstreamPort: UInt16
    private let listenFD: Int32
    private let lock = NSLock()
    private var stats = Stats()
    private var inFlight: [Int: Int] = [:]
    /// stream-id/frame-id of each unanswered NOTIFY -> the connections that carried one
    /// (3.1+ reuses stream-ids on each connection; 2.6's are unique per process).
    private var notifyConnections: [[UInt64]: [Int]] = [:]
    private var stopped = false

    init(upstreamPort: UInt16) throws {
        self.upstreamPort = upstreamPort
        (listenFD, port) = try listeningSocket()
        let t = Thread { [self] in acceptLoop() }
        t.start()
    }

    func snapshot() -> Stats { lock.lock(); defer { lock.unlock() }; return stats }

    func stop() {
        lock.lock()
        let already = stopped
        stopped = true
        lock.unlock()
        if !already { shutdown(listenFD, Int32(SHUT_RDWR)); close(listenFD) }
    }

    deinit { stop() }

    private func acceptLoop() {
        var id = 0
        while true {
            let fd = accept(listenFD, nil, nil)
            if fd < 0 {
                if errno == EINTR { continue }
                return
            }
            lock.lock()
            let isStopped = stopped
            stats.connections += 1
            lock.unlock()
            if isStopped { close(fd); return }
            guard let up = try? TCPConnFD.connect(port: upstreamPort) else { close(fd); continue }
            id += 1
            let cid = id
            let pair = FDPair(a: fd, b: up)
            Thread { [self] in
                pump(from: fd, to: up, conn: cid, upstream: true, pair: pair)
                pair.done()
                lock.lock(); stats.closedConnections += 1; lock.unlock()
            }.start()
            Thread { [self] in pump(from: up, to: fd, conn: cid, upstream: false, pair: pair); pair.done() }.start()
        }
    }

    private func pump(from src: Int32, to dst: Int32, conn: Int, upstream: Bool, pair: FDPair) {
        var buf: [UInt8] = []
        var tmp = [UInt8](repeating: 0, count: 65536)
        var reset = false
        while true {
            let n = tmp.withUnsafeMutableBytes { recv(src, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { reset = n < 0 && errno == ECONNRESET; break }
            buf += tmp[0..<n]
            // Parse complete frames before forwarding, so a NOTIFY is counted before the agent can ACK it.
            while buf.count >= 4 {
                let len = buf[0..<4].reduce(0) { ($0 << 8) | Int($1) }
                guard buf.count >= 4 + len else { break }
                if let f = try? SpopFrame.decode(body: Array(buf[4..<(4 + len)])) { record(f, conn: conn) }
                buf.removeFirst(4 + len)
            }
            var off = 0
            while off < n {
                let w = tmp[off..<n].withUnsafeBytes { send(dst, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if w < 0 && errno == EINTR { continue }
                if w <= 0 { off = -1; break }
                off += w
            }
            if off < 0 { break }
        }
        if reset {
            // Pass a reset on as a reset (HAProxy 3.2 drops idle SPOP connections so):
            // linger 0 makes the pair's final close() send RST; SHUT_RD only wakes the other pump.
            pair.markReset()
            var l = linger(l_onoff: 1, l_linger: 0)
            setsockopt(dst, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
            shutdown(dst, Int32(SHUT_RD))
        } else if !pair.isReset {
            shutdown(src, Int32(SHUT_RDWR))
            shutdown(dst, Int32(SHUT_RDWR))
        }
    }

    private func record(_ f: SpopFrame, conn: Int) {
        lock.lock(); defer { lock.unlock() }
        stats.framesByType[f.type, default: 0] += 1
        switch f.type {
        case SpopType.notify.rawValue:
            stats.notifyStreamIDs.insert(f.streamID)
            stats.notifyStreams.insert([UInt64(conn), f.streamID])
            stats.notifyFrameIDs.insert(f.frameID)
            if f.flags & SpopFlags.fin == 0 { stats.notifyWithoutFin += 1 } else { inFlight[conn, default: 0] += 1 }
            notifyConnections[[f.streamID, f.frameID], default: []].append(conn)
        case SpopType.unset.rawValue:
            stats.unsetFrames += 1
            if f.flags == SpopFlags.fin { inFlight[conn, default: 0] += 1 }
        case SpopType.ack.rawValue:
            stats.acks += 1
            let origin = takeOrigin(of: [f.streamID, f.frameID], ackedOn: conn)
            inFlight[origin, default: 0] -= 1
            if origin != conn { stats.acksOnOtherConnection += 1 }
        case SpopType.haproxyDisconnect.rawValue:
            stats.haproxyDisconnectStatuses.append((try? f.kv())?["status-code"]?.intValue ?? -1)
        case SpopType.agentDisconnect.rawValue:
            stats.agentDisconnectStatuses.append((try? f.kv())?["status-code"]?.intValue ?? -1)
        case SpopType.haproxyHello.rawValue:
            let kv = try? f.kv()
            if kv?["healthcheck"] == .bool(true) { stats.healthCheckHellos += 1 }
            if let engine = kv?["engine-id"]?.stringValue { stats.connectionsByEngine[engine, default: 0] += 1 }
        default:
            break
        }
        stats.maxInFlightPerConnection = max(stats.maxInFlightPerConnection, inFlight[conn] ?? 0)
    }

    /// The connection whose NOTIFY an ACK answers: its own if one is pending there.
    private func takeOrigin(of ids: [UInt64], ackedOn conn: Int) -> Int {
        guard var carriers = notifyConnections[ids], !carriers.isEmpty else { return conn }
        let origin = carriers.contains(conn) ? conn : carriers[0]
        carriers.remove(at: carriers.firstIndex(of: origin)!)
        notifyConnections[ids] = carriers.isEmpty ? nil : carriers
        return origin
    }
}

/// Closes both fds once both pump threads are done.
private final class FDPair: @unchecked Sendable {
    let a: Int32, b: Int32
    private let lock = NSLock()
    private var remaining = 2
    private var resetSeen = false
    init(a: Int32, b: Int32) { self.a = a; self.b = b }
    func markReset() { lock.lock(); resetSeen = true; lock.unlock() }
    var isReset: Bool { lock.lock(); defer { lock.unlock() }; return resetSeen }
    func done() {
        lock.lock()
        remaining -= 1
        let last = remaining == 0
        lock.unlock()
        if last { close(a); close(b) }
    }
}

enum TCPConnFD {
    static func connect(port: UInt16) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw WireError("socket: errno \(errno)") }
        var addr = loopbackAddress(port: port)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 { close(fd); throw WireError("connect: errno \(errno)") }
        return fd
    }
}
