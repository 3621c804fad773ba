// Servers the tests start: a process listening on a free port (redis-server,
// dnsmasq, the HTTP fixture), and a small HTTP API inside the test process.

import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

extension E2ETestCase {
    /// A process started for the test, listening on a free port (TCP) once it runs.
    func startServer(_ name: String, _ executable: String, _ arguments: (UInt16) -> [String]) throws
        -> (ManagedProcess, UInt16)
    {
        let port = try freePort()
        let p = try ManagedProcess(name: name, executable: executable, arguments: arguments(port), logDir: tempDir)
        children.append(p)
        guard waitForPort(port, timeout: 20, while: { p.isRunning }) else {
            throw WireError("\(name) did not start on \(port):\n\(p.logTail())")
        }
        return (p, port)
    }
}

/// An HTTP/1.1 server on a free port of 127.0.0.1, in the test process: each
/// request (GET, no body; keep-alive) is answered by `handler(target)` with a
/// JSON body, and recorded, so a test counts the calls an agent made.
final class TestHTTPServer: @unchecked Sendable {
    let port: UInt16
    private let listenFD: Int32
    private let handler: @Sendable (String) -> (status: Int, body: String)
    private let lock = NSLock()
    private var targets: [String] = []
    private var connections: [Int32] = []
    private var stopped = false

    init(handler: @escaping @Sendable (String) -> (status: Int, body: String)) throws {
        self.handler = handler
        (listenFD, port) = try listeningSocket()
        Thread { [self] in acceptLoop() }.start()
    }

    deinit { stop() }

    /// The request targets ("/v1/decisions?ip=127.0.0.1") received so far, in order.
    var requests: [String] { lock.withLock { targets } }

    /// Closes the listener and every connection: the agent then gets "connection refused".
    func stop() {
        // Under the lock: a connection's descriptor is closed only once it left the list.
        lock.withLock {
            guard !stopped else { return }
            stopped = true
            shutdown(listenFD, Int32(SHUT_RDWR))
            close(listenFD)
            for fd in connections { shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    private func acceptLoop() {
        while true {
            let fd = accept(listenFD, nil, nil)
            if fd < 0 {
                if errno == EINTR { continue }
                return
            }
            let open = lock.withLock { () -> Bool in
                if !stopped { connections.append(fd) }
                return !stopped
            }
            guard open else { close(fd); return }
            Thread { [self] in
                let conn = TCPConn(accepted: fd)
                serve(conn)
                lock.withLock {
                    connections.removeAll { $0 == fd }
                    conn.shutdownAndClose()
                }
            }.start()
        }
    }

    private func serve(_ conn: TCPConn) {
        // One request at a time; ends when the client closes, or after a minute idle.
        while let head = try? conn.readHTTPHead(timeout: 60) {
            let words = head.prefix { $0 != "\r" }.split(separator: " ")
            guard words.count >= 2 else { return }
            let target = String(words[1])
            lock.withLock { targets.append(target) }
            let (status, body) = handler(target)
            let bytes = Array(body.utf8)
            let reply = "HTTP/1.1 \(status) \(status == 200 ? "OK" : "Error")\r\nContent-Type: application/json\r\n"
                + "Content-Length: \(bytes.count)\r\n\r\n"
            guard conn.send(Array(reply.utf8) + bytes) else { return }
        }
    }
}
