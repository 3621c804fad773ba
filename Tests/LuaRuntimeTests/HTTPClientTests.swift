import Foundation
import Logging
@testable import LuaRuntime
@testable import SpopEngine
import XCTest

/// spoa.httpclient() against a real HTTP server (Fixtures/upstreams/http_server.py)
/// over real sockets, through the waiting-handler machinery on a real event loop.
final class HTTPClientTests: XCTestCase {
    var server: FixtureServer!
    var base: String { "http://127.0.0.1:\(server.port)" }

    override func setUpWithError() throws {
        server = try FixtureServer(script: "http_server.py")
    }

    override func tearDown() {
        server = nil
    }

    /// A handler that makes one request from the message's arguments and reports
    /// the response (or the error) as txn variables.
    func harness() throws -> LoopHarness {
        try LoopHarness("""
            local hc = spoa.httpclient()
            spoa.register_message("req", function(txn, msg)
              local a = msg.args
              local res, err = hc[a.method](hc, { url = a.url, body = a.body, timeout = a.timeout,
                                                   headers = { ["X-Req"] = "r1", ["X-List"] = { "l1", "l2" } } })
              if not res then txn:set_var("txn.err", err) return end
              txn:set_var("txn.status", res.status)
              txn:set_var("txn.reason", res.reason)
              txn:set_var("txn.body", res.body)
              local multi = res.headers["x-multi"]
              if multi then txn:set_var("txn.multi", multi[0] .. "," .. multi[1]) end
              if res.headers["x-method"] then txn:set_var("txn.xmethod", res.headers["x-method"][0]) end
              txn:set_var("txn.len", #res.body)
            end, { deadline_ms = 30000 })
            """)
    }

    func request(_ h: LoopHarness, _ method: String, _ path: String, body: String? = nil, timeout: Int? = nil,
                 url: String? = nil) throws -> [String: SpopValue] {
        var arguments: [(name: String, value: SpopValue)] = [("method", .string(method)), ("url", .string(url ?? base + path))]
        if let body { arguments.append(("body", .string(body))) }
        if let timeout { arguments.append(("timeout", .int32(Int32(timeout)))) }
        return try h.vars("req", arguments)
    }

    func testGetReturnsStatusReasonHeadersAndBody() throws {
        let h = try harness()
        let vars = try request(h, "get", "/hello")
        XCTAssertEqual(vars["txn.status"], .int64(200))
        XCTAssertEqual(vars["txn.reason"], .string("OK"))
        XCTAssertEqual(vars["txn.body"], .string("hello"))
        XCTAssertEqual(vars["txn.multi"], .string("a,b"), "repeated headers: one value each, from index 0")
        XCTAssertNil(vars["txn.err"])
    }

    func testMethodsSendBodyAndHeaders() throws {
        let h = try harness()
        XCTAssertEqual(try request(h, "post", "/echo", body: "payload")["txn.body"], .string("POST r1 l1,l2 payload"))
        XCTAssertEqual(try request(h, "put", "/echo", body: "p2")["txn.body"], .string("PUT r1 l1,l2 p2"))
        let deleted = try request(h, "delete", "/echo")
        XCTAssertEqual(deleted["txn.status"], .int64(201))
        XCTAssertEqual(deleted["txn.body"], .string("DELETE r1 l1,l2 "))
        let head = try request(h, "head", "/echo")
        XCTAssertEqual(head["txn.xmethod"], .string("HEAD"))
        XCTAssertEqual(head["txn.len"], .int64(0))
        XCTAssertEqual(try request(h, "get", "/missing")["txn.status"], .int64(404))
        XCTAssertEqual(try request(h, "get", "/redirect")["txn.status"], .int64(302), "redirects are not followed")
    }

    func testDownHostBacksOffThenRecovers() throws {
        let h = try harness()
        let closed = try closedPort()
        let url = "http://127.0.0.1:\(closed)/hello"
        try assertBacksOff(50) { try request(h, "get", "", url: url)["txn.err"]?.text }
        let server = try FixtureServer(script: "http_server.py", arguments: ["\(closed)"])
        XCTAssertEqual(server.port, closed)
        XCTAssertEqual(try afterBackoff { try request(h, "get", "", url: url) }["txn.body"], .string("hello"))
    }

    func testFailuresReturnNilAndAReason() throws {
        let h = try harness()
        XCTAssertEqual(try request(h, "get", "/slow", timeout: 200)["txn.err"], .string("timeout"))
        XCTAssertEqual(try request(h, "get", "", url: "http://127.0.0.1:\(try closedPort())/")["txn.err"],
                       .string("connection refused"))
        XCTAssertEqual(try request(h, "get", "/big")["txn.err"], .string("response larger than 1048576 bytes"))
        XCTAssertEqual(try request(h, "get", "", url: "not a url")["txn.err"], .string("invalid url"))
        XCTAssertEqual(try request(h, "get", "", url: "http://no-such-host.invalid/")["txn.err"]?.text?.hasPrefix("DNS failure"),
                       true)
        // and it still works afterwards
        XCTAssertEqual(try request(h, "get", "/hello")["txn.status"], .int64(200))
    }

    func testConcurrentHandlersShareKeepAliveConnections() throws {
        let h = try harness()
        let frames = (0..<20).map { _ in ("req", [("method", SpopValue.string("get")), ("url", .string(base + "/hello"))]) }
        let acks = try h.run(frames)
        XCTAssertEqual(acks.count, 20)
        XCTAssertTrue(acks.allSatisfy { $0["txn.body"] == .string("hello") })
        let conns = try connections(h)
        XCTAssertNotNil(conns)
        XCTAssertLessThanOrEqual(conns ?? 99, LuaHTTP.maxConnectionsPerHost, "the per-host cap bounds the connections")
    }

    /// Two workers, each with more requests than its cap of connections, in three
    /// rounds: the connections stay pooled between requests and rounds instead of
    /// being closed once idle and opened again, so the count the server accepted
    /// stays within the two workers' caps (a request that takes a freed slot before
    /// its connection is back in the pool may open one more, which stays pooled
    /// too) however many requests are made.
    func testEveryWorkersConnectionsStayPooledAcrossBursts() throws {
        nonisolated(unsafe) let workers = [try harness(), try harness()]
        let frames = (0..<200).map { _ in ("req", [("method", SpopValue.string("get")), ("url", .string(base + "/hello"))]) }
        for _ in 0..<3 {
            let lock = NSLock()
            nonisolated(unsafe) var answered: [Int] = []
            DispatchQueue.concurrentPerform(iterations: workers.count) { index in
                let acks = (try? workers[index].run(frames)) ?? []
                lock.withLock { answered.append(acks.filter { $0["txn.body"] == .string("hello") }.count) }
            }
            XCTAssertEqual(answered, [200, 200])
        }
        let opened = try settledConnections(workers[0])
        XCTAssertNotNil(opened)
        XCTAssertLessThanOrEqual(opened ?? 999, 2 * workers.count * LuaHTTP.maxConnectionsPerHost,
                                 "connections were closed when idle and opened again")
    }

    /// The server's count once it stops moving: it counts a connection when the
    /// thread serving it starts, which can lag behind the accept on a busy machine.
    func settledConnections(_ h: LoopHarness) throws -> Int? {
        var last = try connections(h)
        for _ in 0..<50 {
            Thread.sleep(forTimeInterval: 0.2)
            let now = try connections(h)
            if now == last { return now }
            last = now
        }
        return last
    }

    /// How many connections the server has accepted so far.
    func connections(_ h: LoopHarness) throws -> Int? {
        try request(h, "get", "/conns")["txn.body"]?.text.flatMap { Int($0) }
    }

    func testUsingTheClientWhileTheScriptLoadsIsAnError() throws {
        XCTAssertThrowsError(try Harness("""
            local hc = spoa.httpclient()
            hc:get{ url = "http://127.0.0.1:1/" }
            """)) { error in
            XCTAssertTrue("\(error)".contains("httpclient:get: cannot wait while the script loads"), "\(error)")
        }
        XCTAssertThrowsError(try Harness("""
            spoa.httpclient():get{ url = "http://x/", bogus = 1 }
            """)) { error in
            XCTAssertTrue("\(error)".contains("bogus"), "\(error)")
        }
    }

    func testBackgroundTaskMakesRequests() throws {
        let path = try writeScript("""
            spoa.shared.declare("http_task_results")
            spoa.register_task(function()
              local res, err = spoa.httpclient():get{ url = "\(base)/hello" }
              spoa.shared.http_task_results:set("body", res and res.body or err)
              local _, err2 = spoa.httpclient():get{ url = "\(base)/slow", timeout = 100 }
              spoa.shared.http_task_results:set("err", err2)
            end)
            """)
        let tasks = try BackgroundTasks(configuration: LuaConfiguration(scriptPath: path, workerCount: 1), generation: 0,
                                        logger: Logger(label: "test"))
        tasks.start()
        defer { tasks.stop() }
        XCTAssertTrue(tasks.waitForRuns(1, timeout: 60))
        XCTAssertEqual(tasks.failures, 0)
        let h = try LoopHarness("""
            spoa.shared.declare("http_task_results")
            spoa.register_message("m", function(txn)
              txn:set_var("txn.body", spoa.shared.http_task_results:get("body"))
              txn:set_var("txn.err", spoa.shared.http_task_results:get("err"))
            end)
            """)
        let vars = try h.vars("m")
        XCTAssertEqual(vars["txn.body"], .string("hello"))
        XCTAssertEqual(vars["txn.err"], .string("timeout"))
    }

    func testHTTPSWithAPrivateCA() throws {
        let dir = URL(fileURLWithPath: try writeScript("", name: "unused")).deletingLastPathComponent()
        let cert = dir.appendingPathComponent("cert.pem").path, key = dir.appendingPathComponent("key.pem").path
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        openssl.arguments = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        guard openssl.terminationStatus == 0 else { throw XCTSkip("openssl could not make a certificate") }
        let tls = try FixtureServer(script: "http_server.py", arguments: ["--tls", cert, key])
        let h = try LoopHarness("""
            local hc = spoa.httpclient()
            spoa.register_message("req", function(txn, msg)
              local res, err = hc:get{ url = "https://127.0.0.1:\(tls.port)/hello", ca_file = msg.args.ca }
              txn:set_var("txn.out", res and (res.status .. " " .. res.body) or err)
            end, { deadline_ms = 30000 })
            """)
        XCTAssertEqual(try h.vars("req", [("ca", .string(cert))])["txn.out"]?.text, "200 hello")
        let untrusted = try h.vars("req")["txn.out"]?.text ?? ""
        XCTAssertTrue(untrusted.hasPrefix("TLS failure"), untrusted)
    }
}
