// Test harness: real processes (luaspoa, haproxy), real TCP sockets, no mocks.

import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - paths

enum E2EPaths {
    /// The package root, found from this file's location (Tests/EndToEndTests/Harness.swift).
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func repoFile(_ relative: String) -> URL { packageRoot.appendingPathComponent(relative) }

    /// The agent binary: $E2E_LUASPOA_BIN, next to the running test bundle (any
    /// --scratch-path), then .build/debug and .build/release of the package.
    static func agentBinary() -> String? {
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["E2E_LUASPOA_BIN"], !env.isEmpty {
            candidates.append(env)
        }
        // The xctest executable (Linux) or bundle (macOS) lives in the bin path.
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            candidates.append(URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("luaspoa").path)
        }
        let main = Bundle.main.bundleURL
        candidates.append(main.appendingPathComponent("luaspoa").path)
        candidates.append(main.deletingLastPathComponent().appendingPathComponent("luaspoa").path)
        for b in Bundle.allBundles where b.bundleURL.pathExtension == "xctest" {
            candidates.append(b.bundleURL.deletingLastPathComponent().appendingPathComponent("luaspoa").path)
        }
        candidates.append(repoFile(".build/debug/luaspoa").path)
        candidates.append(repoFile(".build/release/luaspoa").path)
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// $E2E_HAPROXY_CMD (e.g. a tools/haproxy-chroot.sh launcher running 3.2) or
    /// the haproxy on PATH / in the sbin directories.
    static func haproxyBinary() -> String? {
        if let cmd = ProcessInfo.processInfo.environment["E2E_HAPROXY_CMD"], !cmd.isEmpty { return cmd }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let dirs = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/usr/local/sbin", "/sbin"]
        return dirs.map { $0 + "/haproxy" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static func makeTempDir(_ prefix: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("luaspoa-e2e-\(prefix)-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }
}

// MARK: - ports

/// Bind port 0 on 127.0.0.1 and read back the port the kernel chose.
func freePort() throws -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw WireError("socket: errno \(errno)") }
    defer { close(fd) }
    var addr = loopbackAddress(port: 0)
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc == 0 else { throw WireError("bind: errno \(errno)") }
    var out = sockaddr_in()
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &out) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
    }
    return UInt16(bigEndian: out.sin_port)
}

func loopbackAddress(port: UInt16) -> sockaddr_in {
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = port.bigEndian
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    return addr
}

func nowSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

// MARK: - TCP connection

/// A blocking TCP client with poll()-based timeouts and an input buffer.
final class TCPConn {
    let fd: Int32
    private var buffer: [UInt8] = []
    private var closed = false
    private(set) var eof = false

    init(port: UInt16, timeout: Double = 5) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw WireError("socket: errno \(errno)") }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
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

// MARK: - HTTP/1.1 client over a raw socket

struct HTTPResponse {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]

    /// The first header with that name (case-insensitive).
    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }
}

/// A keep-alive HTTP/1.1 connection (requests are sent one at a time).
final class HTTPConn {
    let conn: TCPConn
    init(port: UInt16) throws { conn = try TCPConn(port: port) }

    func get(_ path: String = "/", headers: [(String, String)] = [], timeout: Double = 10) throws -> HTTPResponse {
        var req = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for (k, v) in headers { req += "\(k): \(v)\r\n" }
        req += "\r\n"
        guard conn.send(Array(req.utf8)) else { throw WireError("HTTP send failed") }
        guard let head = try conn.readHTTPHead(timeout: timeout) else { throw WireError("HTTP connection closed before a response") }
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { throw WireError("bad status line: \(statusLine)") }
        var hdrs: [(String, String)] = []
        for l in lines {
            guard let c = l.firstIndex(of: ":") else { continue }
            hdrs.append((String(l[..<c]).trimmingCharacters(in: .whitespaces),
                         String(l[l.index(after: c)...]).trimmingCharacters(in: .whitespaces)))
        }
        var resp = HTTPResponse(status: status, headers: hdrs, body: [])
        if let cl = resp.header("content-length").flatMap({ Int($0) }) {
            if cl > 0 {
                guard let body = try conn.readExactly(cl, timeout: timeout) else { throw WireError("EOF in HTTP body") }
                resp.body = body
            }
        } else if resp.header("transfer-encoding")?.lowercased().contains("chunked") == true {
            // chunk-size CRLF data CRLF ... 0 CRLF CRLF (no trailers expected)
            while true {
                guard let sizeLine = try conn.readLine(timeout: timeout),
                      let size = Int(sizeLine.split(separator: ";")[0].trimmingCharacters(in: .whitespaces), radix: 16)
                else { throw WireError("bad chunk size line") }
                if size == 0 { _ = try conn.readLine(timeout: timeout); break }
                guard let chunk = try conn.readExactly(size, timeout: timeout) else { throw WireError("EOF in chunk") }
                resp.body += chunk
                _ = try conn.readLine(timeout: timeout)
            }
        }
        return resp
    }
}

/// One request on a fresh connection.
/// The agent's Prometheus text at /metrics as [series: value], e.g. `luaspoa_messages_total{message="ok"}`.
func prometheusSeries(port: UInt16) throws -> [String: Double] {
    let response = try httpGet(port: port, "/metrics")
    guard response.status == 200 else { throw WireError("/metrics answered \(response.status)") }
    var series: [String: Double] = [:]
    for line in String(decoding: response.body, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
        guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
        series[String(line[..<space])] = value
    }
    return series
}

func httpGet(port: UInt16, _ path: String = "/", headers: [(String, String)] = [], timeout: Double = 10) throws -> HTTPResponse {
    try HTTPConn(port: port).get(path, headers: headers, timeout: timeout)
}

// MARK: - child processes

/// A child process with its output in a log file, stopped with SIGTERM then SIGKILL.
final class ManagedProcess {
    let name: String
    let process = Process()
    let logURL: URL

    init(name: String, executable: String, arguments: [String], logDir: URL, cwd: URL? = nil,
         environment: [String: String]? = nil) throws {
        self.name = name
        logURL = logDir.appendingPathComponent("\(name).log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let log = try FileHandle(forWritingTo: logURL)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        if let cwd { process.currentDirectoryURL = cwd }
        if let environment { process.environment = environment }
        try process.run()
    }

    var isRunning: Bool { process.isRunning }

    var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    /// Log lines at warning level or above (the first `limit`).
    func problems(_ limit: Int = 10) -> String {
        log.split(separator: "\n").filter { l in
            ["warning", "error", "critical", "timeout"].contains { l.localizedCaseInsensitiveContains($0) }
        }.prefix(limit).joined(separator: "\n")
    }

    func logTail(_ lines: Int = 40) -> String {
        log.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    /// Wait for the process to exit; returns its status, or nil on timeout.
    func waitForExit(timeout: Double) -> Int32? {
        let deadline = nowSeconds() + timeout
        while process.isRunning {
            if nowSeconds() > deadline { return nil }
            usleep(10_000)
        }
        return process.terminationStatus
    }

    /// SIGTERM, wait, then SIGKILL. Returns the exit status (nil if it had to be killed).
    @discardableResult
    func stop(timeout: Double = 10) -> Int32? {
        guard process.isRunning else { return process.terminationStatus }
        kill(process.processIdentifier, SIGTERM)
        if let s = waitForExit(timeout: timeout) { return s }
        kill(process.processIdentifier, SIGKILL)
        _ = waitForExit(timeout: 5)
        return nil
    }
}

/// Poll until something accepts TCP connections on `port`.
func waitForPort(_ port: UInt16, timeout: Double, while alive: () -> Bool = { true }) -> Bool {
    let deadline = nowSeconds() + timeout
    while nowSeconds() < deadline {
        if !alive() { return false }
        if let c = try? TCPConn(port: port) { c.shutdownAndClose(); return true }
        usleep(50_000)
    }
    return false
}

// MARK: - base test case

/// Starts agents/haproxies on demand and stops every one of them in tearDown.
class E2ETestCase: XCTestCase {
    var children: [ManagedProcess] = []
    var taps: [SpopTap] = []
    var tempDir: URL!

    override func setUpWithError() throws {
        try super.setUpWithError()
        signal(SIGPIPE, SIG_IGN)
        tempDir = try E2EPaths.makeTempDir(String(describing: type(of: self)))
    }

    override func tearDown() {
        stopChildren()
        if let tempDir, ProcessInfo.processInfo.environment["E2E_KEEP_TMP"] == nil {
            try? FileManager.default.removeItem(at: tempDir)
        }
        super.tearDown()
    }

    /// Stop the processes and taps started so far (newest first).
    func stopChildren() {
        for c in children.reversed() { c.stop() }
        children.removeAll()
        for t in taps { t.stop() }
        taps.removeAll()
    }

    /// Start luaspoa with the given Lua source (written to a temp file) and wait until it listens.
    func startAgent(script: String, name: String = "agent", extraArgs: [String] = [],
                    generousTimeBudget: Bool = true,
                    file: StaticString = #filePath, line: UInt = #line) throws -> (ManagedProcess, UInt16) {
        let path = tempDir.appendingPathComponent("\(name).lua")
        try script.write(to: path, atomically: true, encoding: .utf8)
        // Scripts built from scripts/ip_reputation.lua read its list from their own directory.
        let list = tempDir.appendingPathComponent("ip_reputation.lst")
        if !FileManager.default.fileExists(atPath: list.path) {
            try FileManager.default.copyItem(at: E2EPaths.repoFile("scripts/ip_reputation.lst"), to: list)
        }
        return try startAgent(scriptPath: path.path, name: name, extraArgs: extraArgs,
                              generousTimeBudget: generousTimeBudget, file: file, line: line)
    }

    /// `launcher` (e.g. setpriv and its options) runs the agent binary as its last argument.
    func startAgent(scriptPath: String, name: String = "agent", extraArgs: [String] = [],
                    generousTimeBudget: Bool = true, launcher: [String] = [],
                    file: StaticString = #filePath, line: UInt = #line) throws -> (ManagedProcess, UInt16) {
        guard let bin = E2EPaths.agentBinary() else {
            XCTFail("luaspoa binary not found (build it with `swift build --product luaspoa`, or set E2E_LUASPOA_BIN)", file: file, line: line)
            throw WireError("no agent binary")
        }
        let port = try freePort()
        // Loaded CI machines (2 cores, parallel builds) can stall a thread for longer than the
        // default 100 ms handler budget; tests that are not about the budget get a generous one.
        // E2E_AGENT_ARGS (space-separated) is appended to every agent's command line, e.g. "--log-level debug".
        let envArgs = (ProcessInfo.processInfo.environment["E2E_AGENT_ARGS"] ?? "").split(separator: " ").map(String.init)
        let extraArgs = extraArgs + envArgs
        let budget = extraArgs.contains("--lua-timeout") || !generousTimeBudget ? [] : ["--lua-timeout", "5000"]
        let args = ["--script", scriptPath, "--listen", "127.0.0.1:\(port)"] + budget + extraArgs
        let p = try ManagedProcess(name: name, executable: launcher.first ?? bin,
                                   arguments: launcher.isEmpty ? args : launcher.dropFirst() + [bin] + args,
                                   logDir: tempDir)
        children.append(p)
        guard waitForPort(port, timeout: 20, while: { p.isRunning }) else {
            XCTFail("agent did not start listening on \(port):\n\(p.logTail())", file: file, line: line)
            throw WireError("agent did not start")
        }
        return (p, port)
    }

    /// A frame-parsing relay in front of the agent on `agentPort`.
    func startTap(agentPort: UInt16) throws -> SpopTap {
        let t = try SpopTap(upstreamPort: agentPort)
        taps.append(t)
        return t
    }

    /// Skip (not fail) when HAProxy is not installed; run-tests.sh installs it.
    func requireHAProxy() throws -> String {
        guard let h = E2EPaths.haproxyBinary() else {
            throw XCTSkip("haproxy binary not found (./run-tests.sh installs it)")
        }
        return h
    }

    /// Write `cfg` (and the other files) into the temp dir, start `haproxy -f cfg -db`, wait for `waitPort`.
    /// `binary` picks another HAProxy (the HAProxy3 tests' chroot launchers).
    func startHAProxy(config cfg: String, files: [String: String] = [:], waitPort: UInt16, binary: String? = nil,
                      file: StaticString = #filePath, line: UInt = #line) throws -> ManagedProcess {
        let bin = try binary ?? requireHAProxy()
        for (n, content) in files {
            try content.write(to: tempDir.appendingPathComponent(n), atomically: true, encoding: .utf8)
        }
        let cfgURL = tempDir.appendingPathComponent("haproxy.cfg")
        // HAProxy refuses a configuration whose last line has no LF.
        try (cfg.hasSuffix("\n") ? cfg : cfg + "\n").write(to: cfgURL, atomically: true, encoding: .utf8)
        let p = try ManagedProcess(name: "haproxy", executable: bin, arguments: ["-f", cfgURL.path, "-db"],
                                   logDir: tempDir, cwd: tempDir)
        children.append(p)
        guard waitForPort(waitPort, timeout: 20, while: { p.isRunning }) else {
            XCTFail("haproxy did not start listening on \(waitPort):\n\(p.logTail())", file: file, line: line)
            throw WireError("haproxy did not start")
        }
        return p
    }

    /// A fresh connection still completes a handshake and gets an ACK for §11.3.
    func assertAgentServes(_ port: UInt16, _ agent: ManagedProcess? = nil,
                           file: StaticString = #filePath, line: UInt = #line) {
        if let agent, !agent.isRunning {
            XCTFail("agent exited (status \(agent.process.terminationStatus)):\n\(agent.logTail())", file: file, line: line)
            return
        }
        do {
            let c = try TCPConn(port: port)
            _ = try c.handshake()
            c.send(Golden.notify11_3)
            let ack = try c.expectFrame(timeout: 5, "ACK")
            XCTAssertEqual(ack.type, SpopType.ack.rawValue, "\(ack)", file: file, line: line)
            XCTAssertEqual(ack.streamID, 300, file: file, line: line)
            XCTAssertEqual(ack.frameID, 1, file: file, line: line)
        } catch {
            XCTFail("agent no longer serves a fresh connection: \(error)\n\(agent?.logTail() ?? "")", file: file, line: line)
        }
    }
}

/// The reference frames of docs/spop-protocol.md §11, byte for byte.
enum Golden {
    static let hello11_1 = hexBytes("""
        00 00 00 81 01 00 00 00 01 00 00 12 73 75 70 70
        6f 72 74 65 64 2d 76 65 72 73 69 6f 6e 73 08 03
        32 2e 30 0e 6d 61 78 2d 66 72 61 6d 65 2d 73 69
        7a 65 03 fc f0 06 0c 63 61 70 61 62 69 6c 69 74
        69 65 73 08 10 70 69 70 65 6c 69 6e 69 6e 67 2c
        61 73 79 6e 63 09 65 6e 67 69 6e 65 2d 69 64 08
        24 30 62 31 65 35 63 39 61 2d 37 66 33 64 2d 34
        61 32 31 2d 39 63 34 34 2d 35 65 36 66 37 61 38
        62 39 63 30 64
        """)
    static let notify11_3 = hexBytes("""
        00 00 00 21 03 00 00 00 01 fc 03 01 0f 63 68 65
        63 6b 2d 63 6c 69 65 6e 74 2d 69 70 01 02 69 70
        06 c0 00 02 0a
        """)
    static let notify11_3_v31 = hexBytes("""
        00 00 00 20 03 00 00 00 01 05 01 0f 63 68 65 63
        6b 2d 63 6c 69 65 6e 74 2d 69 70 01 02 69 70 06
        c0 00 02 0a
        """)
    static let notify11_6 = hexBytes("""
        00 00 00 37 03 00 00 00 01 07 01 04 64 65 6d 6f
        05 00 00 01 62 11 01 6e 04 fe f0 fe fe fe fe fe
        fe fe 0e 02 76 36 07 20 01 0d b8 00 00 00 00 00
        00 00 00 00 00 00 01 01 65 08 00
        """)
    static let fragment11_7_first = hexBytes("""
        00 00 00 13 03 00 00 00 00 fc 03 02 01 6d 01 01
        73 08 0a 41 42 43 44
        """)
    static let fragment11_7_last = hexBytes("""
        00 00 00 0e 00 00 00 00 01 fc 03 02 45 46 47 48
        49 4a
        """)
    static let fragment11_7_abort = hexBytes("00 00 00 08 00 00 00 00 03 fc 03 02")
    static let disconnect11_8 = hexBytes("""
        00 00 00 31 02 00 00 00 01 00 00 0b 73 74 61 74
        75 73 2d 63 6f 64 65 03 02 07 6d 65 73 73 61 67
        65 08 12 61 20 74 69 6d 65 6f 75 74 20 6f 63 63
        75 72 72 65 64
        """)
    static let agentDisconnect11_8 = hexBytes("""
        00 00 00 25 66 00 00 00 01 00 00 0b 73 74 61 74
        75 73 2d 63 6f 64 65 03 00 07 6d 65 73 73 61 67
        65 08 06 6e 6f 72 6d 61 6c
        """)
    static let healthcheck11_9 = hexBytes("""
        00 00 00 4e 01 00 00 00 01 00 00 12 73 75 70 70
        6f 72 74 65 64 2d 76 65 72 73 69 6f 6e 73 08 03
        32 2e 30 0e 6d 61 78 2d 66 72 61 6d 65 2d 73 69
        7a 65 03 fc f0 06 0c 63 61 70 61 62 69 6c 69 74
        69 65 73 08 00 0b 68 65 61 6c 74 68 63 68 65 63
        6b 11
        """)
}
