import Foundation
@testable import LuaRuntime
import XCTest

/// The client stubs of spoa.test (T.stub_http, stub_dns, stub_redis, stub_tcp)
/// and T.run_task. A stubbed call must look to the script exactly like the real
/// client's: the same script asks real servers (HTTP fixture, dnsmasq,
/// redis-server, a closed port) in one case and stubs in the next, and the spec
/// compares what it got, result counts and types included.
final class SpecStubTests: XCTestCase {
    /// Handlers that describe every value a client returned ("2 nil:nil string:timeout").
    static func script(http: Int, dns: Int, redis: Int, closed: Int) -> String {
        """
        spoa.dns.configure{ servers = { "127.0.0.1:\(dns)" } }
        local function show(v)
          if spoa.is_addr(v) then return "addr:" .. tostring(v) end
          if type(v) ~= "table" then return type(v) .. ":" .. tostring(v) end
          local keys = {}
          for k in pairs(v) do keys[#keys + 1] = k end
          table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
          local parts = {}
          for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. "=" .. show(v[k]) end
          return "{" .. table.concat(parts, ",") .. "}"
        end
        local function describe(t)
          local parts = { tostring(t.n) }
          for i = 1, t.n do parts[#parts + 1] = show(t[i]) end
          return table.concat(parts, " ")
        end
        HTTP = "http://127.0.0.1:\(http)"
        CLOSED = "http://127.0.0.1:\(closed)"
        local hc = spoa.httpclient()
        local redis = spoa.redis.new{ port = \(redis), timeout = 2000 }
        local down = spoa.redis.new{ port = \(closed), timeout = 2000 }
        spoa.register_message("http", function(txn, msg)
          local got = table.pack(hc:get{ url = msg.args.url, timeout = 2000 })
          local res = got[1]
          if res then  -- the parts a server does not choose itself (not Date, Server)
            got = table.pack(res.status, res.reason, res.headers["x-multi"], res.headers["content-type"], res.body)
          end
          txn:set_var("txn.out", describe(got))
        end)
        spoa.register_message("dns", function(txn, msg)
          local got = msg.args.type == "reverse" and table.pack(spoa.dns.reverse(msg.args.name))
            or table.pack(spoa.dns.resolve(msg.args.name, { type = msg.args.type }))
          txn:set_var("txn.out", describe(got))
        end)
        spoa.register_message("redis", function(txn, msg)
          local client = msg.args.down and down or redis
          txn:set_var("txn.out", describe(table.pack(client:call("GET", msg.args.key))))
        end)
        spoa.register_message("tcp", function(txn, msg)
          local s = spoa.tcp()
          txn:set_var("txn.out", describe(table.pack(s:connect("127.0.0.1", \(closed)))))
        end)
        """
    }

    func testStubbedCallsLookLikeRealOnes() throws {
        let http = try FixtureServer(script: "http_server.py")
        let dns = try DNSServer()
        let redis = try RedisServer()
        try redis.start()
        // dnsmasq ends first: Foundation's Process reaps children on one thread, which
        // can block waiting for dnsmasq while another child's exit is awaited.
        defer { withExtendedLifetime((http, redis)) { dns.stop() } }
        let closed = try closedPort()
        let path = try writeScript(Self.script(http: http.port, dns: dns.port, redis: redis.port, closed: closed))
        let runner = try LuaSpecRunner(configuration: LuaConfiguration(scriptPath: path, workerCount: 1))
        let results = try runner.run(specPath: try writeScript("""
            local T = spoa.test
            local function out(name, args) return T.notify(name, args):get("txn.out") end
            -- every call of the spec, asked of the real clients, then of the stubs
            local function ask()
              return {
                hello = out("http", { url = HTTP .. "/hello" }),
                refused = out("http", { url = CLOSED .. "/x" }),
                a = out("dns", { name = "a.test", type = "A" }),
                aaaa = out("dns", { name = "a.test", type = "AAAA" }),
                ptr = out("dns", { name = "192.0.2.7", type = "reverse" }),
                nxdomain = out("dns", { name = "nothing.test", type = "A" }),
                missing = out("redis", { key = "missing" }),
                redis_down = out("redis", { key = "k", down = true }),
                tcp_refused = out("tcp", {}),
              }
            end
            T.case("real", function() REAL = ask() end)
            T.case("stubbed", function()
              local http = T.stub_http{
                [HTTP .. "/hello"] = { status = 200, body = "hello",
                                       headers = { ["X-Multi"] = { "a", "b" }, ["Content-Type"] = "text/plain" } },
                ["GET " .. CLOSED .. "/x"] = "connection refused",
              }
              local dns = T.stub_dns{
                ["a.test"] = { "192.0.2.7", "2001:db8::7" },
                ["7.2.0.192.in-addr.arpa"] = { "crawler.a.test" },
              }
              local redis = T.stub_redis(function(cmd, key)
                if key == "k" then return nil, "connection refused" end
              end)
              local tcp = T.stub_tcp(function(op) return nil, "connection refused" end)
              T.eq(ask(), REAL)
              T.eq(#http, 2)
              T.eq(http[1].url, HTTP .. "/hello")
              T.eq(http[1].method, "GET")
              T.eq(http[1].timeout, 2000)
              T.eq(dns[3], { name = "7.2.0.192.in-addr.arpa", type = "PTR" })
              T.eq(redis, { { "GET", "missing" }, { "GET", "k" } })
              T.eq(tcp[1][1], "connect")
              T.eq(tcp[1][3], "\(closed)")
            end)
            T.case("stubs end with their case", function()
              T.eq(out("http", { url = HTTP .. "/hello" }), REAL.hello)
            end)
            """, name: "stubs_spec.lua"))
        XCTAssertEqual(results.map(\.name), ["real", "stubbed", "stubs end with their case"])
        for result in results {
            XCTAssertTrue(result.passed, "\(result.name): \(result.error ?? "")")
        }
    }

    /// What a stub answers is checked as the client's reply would be: a wrong
    /// answer fails the handler with a message naming the stub; a table stub
    /// without the URL names it.
    func testBadStubAnswersNameTheStub() throws {
        let runner = try LuaSpecRunner(configuration: LuaConfiguration(scriptPath: try writeScript("""
            local hc = spoa.httpclient()
            spoa.register_message("get", function(txn, msg)
              txn:set_var("txn.status", hc:get{ url = msg.args.url }.status)
            end)
            spoa.register_message("resolve", function(txn, msg)
              txn:set_var("txn.n", #spoa.dns.resolve("x.test"))
            end)
            """), workerCount: 1))
        let results = try runner.run(specPath: try writeScript("""
            local T = spoa.test
            T.case("status", function()
              T.stub_http(function() return { status = "fine" } end)
              T.eq(T.notify("get", { url = "http://x/" }).error, nil)
            end)
            T.case("no answer", function()
              T.stub_http{ ["http://x/a"] = { status = 204 } }
              T.eq(T.notify("get", { url = "http://x/a" }):get("txn.status"), 204)
              T.eq(T.notify("get", { url = "http://x/b" }).error, nil)
            end)
            T.case("dns", function()
              T.stub_dns(function() return { "not an address" } end)
              T.eq(T.notify("resolve", {}).error, nil)
            end)
            T.case("nothing", function()
              T.stub_dns(function() end)
              T.eq(T.notify("resolve", {}).error, nil)
            end)
            T.case("kind", function() T.stub_redis{} end)
            """, name: "bad_spec.lua"))
        XCTAssertEqual(results.map(\.passed), [false, false, false, false, false])
        let errors = results.map { $0.error ?? "" }
        XCTAssertTrue(errors[0].contains("T.stub_http: status must be an integer from 100 to 999"), errors[0])
        XCTAssertTrue(errors[1].contains("T.stub_http: no answer for GET http://x/b"), errors[1])
        XCTAssertTrue(errors[2].contains("T.stub_dns: invalid IP address"), errors[2])
        XCTAssertTrue(errors[3].contains("T.stub_dns: the stub returned neither an answer nor nil, error"), errors[3])
        XCTAssertTrue(errors[4].contains("T.stub_redis: a function expected, got table"), errors[4])
    }

    /// T.run_task runs a task in the spec's state, waiting included; its error fails the case.
    func testRunTask() throws {
        let runner = try LuaSpecRunner(configuration: LuaConfiguration(scriptPath: try writeScript("""
            local d = spoa.shared.declare("t")
            local hc = spoa.httpclient()
            spoa.register_task(function()
              local res, err = hc:get{ url = "http://api/list" }
              if not res then error("pull: " .. err) end
              d:set("list", res.body)
            end, { every = 1000 })
            spoa.register_message("list", function(txn) txn:set_var("txn.list", d:get("list")) end)
            """), workerCount: 1))
        let results = try runner.run(specPath: try writeScript("""
            local T = spoa.test
            T.case("runs", function()
              T.stub_http{ ["http://api/list"] = { body = "a b" } }
              T.run_task(1)
              T.eq(T.notify("list", {}):get("txn.list"), "a b")
            end)
            T.case("fails", function()
              T.stub_http{ ["http://api/list"] = "timeout" }
              T.run_task(1)
            end)
            T.case("no such task", function() T.run_task(2) end)
            """, name: "task_spec.lua"))
        XCTAssertEqual(results.map(\.passed), [true, false, false], results.map { $0.error ?? "" }.joined(separator: "\n"))
        XCTAssertTrue(results[1].error?.contains("T.run_task: task 1: ") == true && results[1].error?.contains("pull: timeout") == true,
                      results[1].error ?? "")
        XCTAssertTrue(results[2].error?.contains("T.run_task: no task 2 (the script registered 1)") == true, results[2].error ?? "")
    }
}
