// What the HAProxy end-to-end tests share, for any HAProxy version: the
// generated configuration (fe_web with the SPOE filter and variables copied into
// response headers -> be_app -> fe_app answering 200), parallel HTTP load, and
// a server's row of the stats page.

import Foundation
import XCTest

struct ProxySetup {
    var web: UInt16
    var app: UInt16
    var agent: UInt16
    /// `tcp` for 2.6 – 3.0, `spop` for 3.1+.
    var backendMode: String

    init(agent: UInt16, backendMode: String = "tcp") throws {
        web = try freePort()
        app = try freePort()
        self.agent = agent
        self.backendMode = backendMode
    }

    /// `X-V-<name>` response header = var(<scope>.e2e.<name>) (through `converters[name]`),
    /// only when it exists, so an absent header means an absent variable.
    static func varHeaders(_ names: [String], scope: String = "txn", converters: [String: String] = [:]) -> [String] {
        names.map { n in
            "http-response set-header X-V-\(n) \"%[var(\(scope).e2e.\(n))\(converters[n] ?? "")]\" if { var(\(scope).e2e.\(n)) -m found }"
        }
    }

    /// `global` and `extra` are appended to their sections; `serverTimeout` is be_agents' `timeout server`.
    func haproxyConfig(headers: [String], check: String = "check inter 2s", serverTimeout: String = "2m",
                       global: String = "", extra: String = "") -> String {
        """
        global
            log stdout format raw local0 info
            default-path config
        \(global.isEmpty ? "" : "    " + global)

        defaults
            mode http
            log global
            timeout connect 5s
            timeout client  30s
            timeout server  30s

        frontend fe_web
            bind 127.0.0.1:\(web)
            filter spoe engine e2e config e2e-spoe.conf
            http-response set-header X-SPOE-Error %[var(txn.e2e.err)] if { var(txn.e2e.err) -m found }
        \(headers.map { "    " + $0 }.joined(separator: "\n"))
            default_backend be_app

        backend be_app
            server app1 127.0.0.1:\(app)

        frontend fe_app
            bind 127.0.0.1:\(app)
            http-request return status 200 content-type text/plain string ok

        backend be_agents
            mode \(backendMode)
            option spop-check
            timeout connect 5s
            timeout server  \(serverTimeout)
            server a1 127.0.0.1:\(agent) \(check)

        \(extra)
        """
    }

    /// e2e-spoe.conf: one message per entry, on-frontend-http-request. 3.1+ ignores
    /// `timeout hello` / `timeout idle`; 2.6 – 3.0 use them.
    static func spoeConfig(messages: [(name: String, args: String)], maxFrameSize: Int? = nil,
                           idleTimeout: String = "1m", processing: String = "5s") -> String {
        var s = """
        [e2e]
        spoe-agent e2e-agent
            messages \(messages.map(\.name).joined(separator: " "))
            use-backend be_agents
            option var-prefix e2e
            option force-set-var
            option set-on-error err
            timeout hello      5s
            timeout idle       \(idleTimeout)
            timeout processing \(processing)

        """
        if let maxFrameSize { s += "    max-frame-size \(maxFrameSize)\n" }
        for m in messages {
            s += "\nspoe-message \(m.name)\n    args \(m.args)\n    event on-frontend-http-request\n"
        }
        return s
    }

    /// A shipped haproxy/*.cfg with the documented ports (8080 web, 8081 app,
    /// 12345 agent) replaced by this setup's, and `nbthread threads` if given.
    func shipped(_ relativePath: String, threads: Int? = nil) throws -> String {
        let cfg = try String(contentsOf: E2EPaths.repoFile(relativePath), encoding: .utf8)
        for needle in ["127.0.0.1:8080", "127.0.0.1:8081", "127.0.0.1:12345"] where !cfg.contains(needle) {
            throw WireError("\(relativePath) no longer contains \(needle)")
        }
        let ported = cfg.replacingOccurrences(of: "127.0.0.1:8080", with: "127.0.0.1:\(web)")
            .replacingOccurrences(of: "127.0.0.1:8081", with: "127.0.0.1:\(app)")
            .replacingOccurrences(of: "127.0.0.1:12345", with: "127.0.0.1:\(agent)")
        return try threads.map { try Self.withThreads($0, ported) } ?? ported
    }

    /// `cfg` with `nbthread n` first in its global section: each HAProxy thread
    /// opens its own connections to the agent.
    static func withThreads(_ n: Int, _ cfg: String) throws -> String {
        guard cfg.contains("\nglobal\n") else { throw WireError("no global section in:\n\(cfg)") }
        return cfg.replacingOccurrences(of: "\nglobal\n", with: "\nglobal\n    nbthread \(n)\n")
    }
}

/// `total` GETs over `connections` keep-alive connections in parallel (request i
/// on connection i % connections, built by `request(i)`); ok when `accept(i, response)`.
/// One thread per connection: a thread pool would run only as many clients as cores,
/// which serialises requests whose answer waits on something else than the CPU.
func httpLoad(port: UInt16, total: Int, connections: Int, timeout: Double = 15,
              request: @escaping @Sendable (Int) -> (path: String, headers: [(String, String)]),
              accept: @escaping @Sendable (Int, HTTPResponse) -> Bool) -> (results: LoadResults, seconds: Double) {
    let results = LoadResults()
    let start = nowSeconds()
    let done = DispatchGroup()
    for worker in 0..<connections {
        done.enter()
        let thread = Thread {
            defer { done.leave() }
            var conn: HTTPConn?
            for i in stride(from: worker, to: total, by: connections) {
                do {
                    if conn == nil { conn = try HTTPConn(port: port) }
                    let (path, headers) = request(i)
                    let r = try conn!.get(path, headers: headers, timeout: timeout)
                    if accept(i, r) {
                        results.ok()
                    } else {
                        results.fail("request \(i) \(path): status \(r.status) headers \(r.headers)")
                    }
                    if r.header("connection")?.lowercased() == "close" { conn = nil }
                } catch {
                    results.fail("request \(i): \(error)")
                    conn = nil
                }
            }
        }
        thread.stackSize = 256 << 10
        thread.start()
    }
    done.wait()
    return (results, nowSeconds() - start)
}

/// The stats CSV row of `backend`/`server` as column name -> value, nil if absent.
/// `check_status` loses the "* " HAProxy puts in front while a check is running.
func haproxyServerStats(statsPort: UInt16, backend: String, server: String) throws -> [String: String]? {
    let csv = String(decoding: try httpGet(port: statsPort, "/stats;csv").body, as: UTF8.self)
    let lines = csv.split(separator: "\n").map(String.init)
    guard let header = lines.first, let row = lines.first(where: { $0.hasPrefix("\(backend),\(server),") }) else {
        return nil
    }
    let cols = header.trimmingCharacters(in: CharacterSet(charactersIn: "# ")).split(separator: ",", omittingEmptySubsequences: false)
    let vals = row.split(separator: ",", omittingEmptySubsequences: false)
    var stats = Dictionary(zip(cols.map(String.init), vals.map(String.init)), uniquingKeysWith: { a, _ in a })
    if let c = stats["check_status"], c.hasPrefix("* ") { stats["check_status"] = String(c.dropFirst(2)) }
    return stats
}

/// Polls the stats page until `backend`/`server` is UP with check_status L7OK (a
/// probe answered late on a loaded machine may flap it), or `timeout` passes;
/// returns the last row read.
func waitForServerUp(statsPort: UInt16, backend: String, server: String, timeout: Double = 10) throws -> [String: String]? {
    let deadline = nowSeconds() + timeout
    var row = try haproxyServerStats(statsPort: statsPort, backend: backend, server: server)
    while nowSeconds() < deadline, row?["status"] != "UP" || row?["check_status"] != "L7OK" {
        usleep(100_000)
        row = try haproxyServerStats(statsPort: statsPort, backend: backend, server: server)
    }
    return row
}

/// A stats frontend on `port` for `extra:` of ProxySetup.haproxyConfig.
func statsFrontend(port: UInt16) -> String {
    "frontend stats\n    bind 127.0.0.1:\(port)\n    stats enable\n    stats uri /stats\n"
}
