import Foundation
@testable import LuaRuntime
import NIOCore
import NIOPosix
@testable import SpopEngine
import XCTest

/// spoa.dns against a real dnsmasq started by the test, through the
/// waiting-handler machinery on a real event loop.
final class DNSClientTests: XCTestCase {
    func harness(servers: String) throws -> LoopHarness {
        try LoopHarness("""
            spoa.dns.configure{ servers = { \(servers) } }
            spoa.register_message("dns", function(txn, msg)
              local a = msg.args
              local list, err
              if a.reverse then
                list, err = spoa.dns.reverse(a.reverse, { timeout = a.timeout })
              else
                list, err = spoa.dns.resolve(a.name, { type = a.type, timeout = a.timeout })
              end
              if not list then txn:set_var("txn.err", err) return end
              local parts = {}
              for i, v in ipairs(list) do parts[i] = (spoa.is_addr(v) and "addr:" or "") .. tostring(v) end
              txn:set_var("txn.list", table.concat(parts, ","))
            end, { deadline_ms = 30000 })
            """)
    }

    func lookup(_ h: LoopHarness, _ name: String, type: String? = nil, timeout: Int? = nil) throws -> [String: SpopValue] {
        var arguments: [(name: String, value: SpopValue)] = [("name", .string(name))]
        if let type { arguments.append(("type", .string(type))) }
        if let timeout { arguments.append(("timeout", .int32(Int32(timeout)))) }
        return try h.vars("dns", arguments)
    }

    func testRecordTypesReverseAndErrors() throws {
        let dns = try DNSServer()
        let h = try harness(servers: "\"127.0.0.1:\(dns.port)\"")
        XCTAssertEqual(try lookup(h, "a.test")["txn.list"]?.text, "addr:192.0.2.7")
        XCTAssertEqual(try lookup(h, "A.Test", type: "AAAA")["txn.list"]?.text, "addr:2001:db8::7")
        XCTAssertEqual(try lookup(h, "t.test", type: "TXT")["txn.list"]?.text, "hello world")
        XCTAssertEqual(try lookup(h, "7.2.0.192.in-addr.arpa", type: "PTR")["txn.list"]?.text, "crawler.a.test")
        XCTAssertEqual(try h.vars("dns", [("reverse", .ipv4(IPv4Address(192, 0, 2, 7)))])["txn.list"]?.text, "crawler.a.test")
        XCTAssertEqual(try lookup(h, "nothing.test")["txn.err"]?.text, "not found")
        XCTAssertEqual(try lookup(h, "t.test", type: "AAAA")["txn.list"]?.text, "", "no record of that type: an empty list")
    }

    func testAnswersAreCachedForTheirTTL() throws {
        let dns = try DNSServer()
        let h = try harness(servers: "\"127.0.0.1:\(dns.port)\"")
        XCTAssertEqual(try lookup(h, "a.test")["txn.list"]?.text, "addr:192.0.2.7")
        dns.stop()
        XCTAssertEqual(try lookup(h, "a.test")["txn.list"]?.text, "addr:192.0.2.7", "from the cache (TTL 60 s)")
        let err = try lookup(h, "b.a.test", timeout: 3000)["txn.err"]?.text
        XCTAssertTrue(err == "connection refused" || err == "timeout", "\(err ?? "nil")")
    }

    func testAStoppedWorkerEndsItsResolverAndANewOneServes() throws {
        let dns = try DNSServer()
        let h = try harness(servers: "\"127.0.0.1:\(dns.port)\"")
        XCTAssertEqual(try lookup(h, "a.test")["txn.list"]?.text, "addr:192.0.2.7")
        h.stop()
        dns.stop()
        // The cache went with the resolver: this lookup asks a server that is gone.
        let err = try lookup(h, "a.test", timeout: 3000)["txn.err"]?.text
        XCTAssertTrue(err == "connection refused" || err == "timeout", "\(err ?? "nil")")
    }

    func testAServerThatDoesNotAnswerTimesOut() throws {
        // A UDP socket that never answers.
        let silent = try DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).wait()
        defer { try? silent.close().wait() }
        let h = try harness(servers: "\"127.0.0.1:\(silent.localAddress!.port!)\"")
        XCTAssertEqual(try lookup(h, "a.test", timeout: 200)["txn.err"]?.text, "timeout")
    }

    func testMisuseRaises() throws {
        XCTAssertThrowsError(try Harness("spoa.dns.resolve('a.test')")) { error in
            XCTAssertTrue("\(error)".contains("spoa.dns.resolve: cannot wait while the script loads"), "\(error)")
        }
        XCTAssertThrowsError(try Harness("spoa.dns.configure{ servers = { 'a b' } }")) { error in
            XCTAssertTrue("\(error)".contains("server 1 must be"), "\(error)")
        }
        let h = try LoopHarness("""
            spoa.register_message("m", function(txn)
              local ok, err = pcall(spoa.dns.resolve, "a.test", { type = "MX" })
              txn:set_var("txn.err", err)
              ok, err = pcall(spoa.dns.configure, { servers = { "127.0.0.1" } })
              txn:set_var("txn.err2", err)
            end)
            """)
        let vars = try h.vars("m")
        XCTAssertEqual(vars["txn.err"]?.text?.contains("type must be"), true, "\(vars)")
        XCTAssertEqual(vars["txn.err2"]?.text?.contains("spoa.dns.configure"), true, "\(vars)")
    }
}
