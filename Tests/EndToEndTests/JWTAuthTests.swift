// scripts/jwt_auth.lua behind a real HAProxy with the shipped
// haproxy/haproxy-jwt-auth.cfg: no token or a bad one is a 401 with the reason,
// a valid HS256 token (signed here by the openssl CLI) reaches the application
// with the verified subject and role.

import Foundation
import XCTest

final class JWTAuthTests: E2ETestCase {
    static let secret = "example secret: replace with 32+ random bytes shared with the issuer"

    static func base64url(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// An HS256 token over `claims`, its HMAC computed by `openssl dgst -hmac`.
    func token(_ claims: String, secret: String = JWTAuthTests.secret) throws -> String {
        let input = Self.base64url(Data(#"{"alg":"HS256","typ":"JWT"}"#.utf8)) + "." + Self.base64url(Data(claims.utf8))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = ["dgst", "-sha256", "-binary", "-hmac", secret]
        let stdin = Pipe(), stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        try process.run()
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try stdin.fileHandleForWriting.close()
        let mac = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(mac.count, 32)
        return input + "." + Self.base64url(mac)
    }

    func claims(exp: Int, aud: String = "example-api") -> String {
        #"{"sub":"alice","role":"admin","iss":"https://idp.example","aud":"\#(aud)","exp":\#(exp)}"#
    }

    func testOnlyAValidTokenPasses() throws {
        try checkTokens(haproxy: requireHAProxy())
    }

    /// The same configuration through HAProxy 3.x (its "mode tcp" agents backend is converted on 3.1+).
    func testOnlyAValidTokenPassesThroughHAProxy3() throws {
        try forEachHAProxy3 { t in try checkTokens(haproxy: t.command) }
    }

    func checkTokens(haproxy binary: String) throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") else { throw XCTSkip("no openssl CLI") }
        let metricsPort = try freePort()
        let (agent, agentPort) = try startAgent(
            scriptPath: E2EPaths.repoFile("scripts/jwt_auth.lua").path, name: "jwt",
            extraArgs: ["--var-prefix", "jwt", "--metrics", "127.0.0.1:\(metricsPort)", "--workers", "2"])
        let setup = try ProxySetup(agent: agentPort), web = setup.web
        let cfg = try setup.shipped("haproxy/haproxy-jwt-auth.cfg")
        let spoe = try String(contentsOf: E2EPaths.repoFile("haproxy/spoe-jwt-auth.conf"), encoding: .utf8)
        let haproxy = try startHAProxy(config: cfg, files: ["spoe-jwt-auth.conf": spoe], waitPort: web, binary: binary)
        let logs = { "\n\(haproxy.logTail())\n\(agent.logTail())" }
        let now = Int(Date().timeIntervalSince1970)

        let anonymous = try httpGet(port: web)
        XCTAssertEqual(anonymous.status, 401, "\(anonymous.headers)\(logs())")
        XCTAssertEqual(anonymous.header("X-JWT-Error"), "no token")

        let valid = try token(claims(exp: now + 300))
        let ok = try httpGet(port: web, headers: [("Authorization", "Bearer \(valid)"), ("X-User", "mallory")])
        XCTAssertEqual(ok.status, 200, "\(ok.headers)\(logs())")
        XCTAssertEqual(String(decoding: ok.body, as: UTF8.self), "hello alice (admin)\n", "the client's X-User is replaced")
        XCTAssertNil(ok.header("X-JWT-Error"))

        for (auth, reason) in [
            ("Bearer \(try token(claims(exp: now + 300), secret: "guessed"))", "bad signature"),
            ("Bearer \(try token(claims(exp: now - 300)))", "expired"),
            ("Bearer \(try token(claims(exp: now + 300, aud: "other")))", "wrong audience"),
            ("Bearer not.a.token", "malformed"),
        ] {
            let r = try httpGet(port: web, headers: [("Authorization", auth)])
            XCTAssertEqual(r.status, 401, "\(reason): \(r.headers)\(logs())")
            XCTAssertEqual(r.header("X-JWT-Error"), reason, "\(r.headers)")
        }
        XCTAssertFalse(agent.logTail().contains("error"), agent.logTail())

        // The script's own counter, summed over both workers.
        let series = try prometheusSeries(port: metricsPort)
        let decisions = "luaspoa_script_jwt_decisions_total"
        XCTAssertEqual(series["\(decisions){result=\"valid\"}"], 1, "\(series.filter { $0.key.hasPrefix(decisions) })")
        XCTAssertEqual(series["\(decisions){result=\"no token\"}"], 1)
        XCTAssertEqual(series["\(decisions){result=\"bad signature\"}"], 1)
        XCTAssertEqual(series["\(decisions){result=\"expired\"}"], 1)
    }
}
