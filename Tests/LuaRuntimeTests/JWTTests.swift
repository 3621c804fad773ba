import Foundation
@testable import LuaRuntime
import XCTest

/// spoa.jwt with RS256 and ES256 tokens signed here by the openssl CLI (keys
/// made at set-up); the HMAC cases are in Tests/LuaSpecs/jwt_spec.lua.
final class JWTTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") else {
            throw XCTSkip("openssl CLI not installed")
        }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("luaspoa-jwt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }

    @discardableResult
    func openssl(_ arguments: [String], input: Data? = nil) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        process.currentDirectoryURL = directory
        let stdin = Pipe(), stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        try process.run()
        stdin.fileHandleForWriting.write(input ?? Data())
        try stdin.fileHandleForWriting.close()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "openssl \(arguments)")
        return output
    }

    /// A private key file and its public key's PEM text.
    func makeKey(_ name: String, _ options: [String]) throws -> String {
        try openssl(["genpkey", "-out", "\(name).pem"] + options)
        return String(decoding: try openssl(["pkey", "-in", "\(name).pem", "-pubout"]), as: UTF8.self)
    }

    static func base64url(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// DER ECDSA-Sig-Value (SEQUENCE { INTEGER r, INTEGER s }) to JWS's r || s, 32 bytes each.
    static func rawECDSA(_ der: Data) -> Data {
        let bytes = [UInt8](der)
        var index = 2
        if bytes[1] & 0x80 != 0 { index += Int(bytes[1] & 0x7F) }
        var out = Data()
        for _ in 0..<2 {
            let length = Int(bytes[index + 1])
            var integer = Array(bytes[(index + 2)..<(index + 2 + length)])
            while integer.count > 32 && integer.first == 0 { integer.removeFirst() }
            out.append(Data(repeating: 0, count: 32 - integer.count) + integer)
            index += 2 + length
        }
        return out
    }

    func token(alg: String, key: String, claims: String) throws -> String {
        let input = Self.base64url(Data(#"{"alg":"\#(alg)","typ":"JWT"}"#.utf8)) + "." + Self.base64url(Data(claims.utf8))
        var signature = try openssl(["dgst", "-sha256", "-sign", "\(key).pem"], input: Data(input.utf8))
        if alg.hasPrefix("ES") { signature = Self.rawECDSA(signature) }
        return input + "." + Self.base64url(signature)
    }

    func testRS256AndES256() throws {
        let rsaPublic = try makeKey("rsa", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
        let otherRSA = try makeKey("rsa2", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
        let ecPublic = try makeKey("ec", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])
        let k1Public = try makeKey("k1", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:secp256k1"])
        let claims = #"{"sub":"alice","role":"admin","iss":"idp","aud":"api","exp":1700000600}"#
        let rs = try token(alg: "RS256", key: "rsa", claims: claims)
        let es = try token(alg: "ES256", key: "ec", claims: claims)
        let spec = """
            local T = spoa.test
            local RSA, RSA2, EC, K1 = [[\(rsaPublic)]], [[\(otherRSA)]], [[\(ecPublic)]], [[\(k1Public)]]
            local RS, ES = "\(rs)", "\(es)"
            local function refused(want, ...)
              local claims, reason = spoa.jwt.verify(...)
              T.eq(claims, nil, want)
              T.eq(reason, want)
            end
            T.case("RS256", function()
              T.clock.set_ms(1700000000 * 1000)
              local claims, header = spoa.jwt.verify(RS, { alg = "RS256", key = RSA, iss = "idp", aud = "api" })
              T.eq(claims and claims.role, "admin")
              T.eq(header and header.alg, "RS256")
              local key = assert(spoa.jwt.key(RSA))
              T.eq(spoa.jwt.verify(RS, { alg = "RS256", key = key }).sub, "alice", "a parsed key")
              refused("bad signature", RS, { alg = "RS256", key = RSA2 })
              refused("bad signature", RS:sub(1, -3) .. (RS:sub(-2, -2) == "A" and "B" or "A") .. RS:sub(-1), { alg = "RS256", key = RSA })
              refused("alg not allowed", RS, { alg = "HS256", key = RSA })
              refused("alg not allowed", RS, { alg = "ES256", key = EC })
              T.clock.set_ms(1700000600 * 1000)
              refused("expired", RS, { alg = "RS256", key = RSA })
            end)
            T.case("ES256", function()
              T.clock.set_ms(1700000000 * 1000)
              T.eq(spoa.jwt.verify(ES, { alg = "ES256", key = EC, aud = "api" }).sub, "alice")
              refused("wrong audience", ES, { alg = "ES256", key = EC, aud = "web" })
              refused("bad signature", ES:sub(1, -5) .. "AAAA", { alg = "ES256", key = EC })
              local h, p, s = ES:match("^([^.]+)%.([^.]+)%.([^.]+)$")
              refused("bad signature", h .. "." .. p .. "." .. s:sub(1, 40), { alg = "ES256", key = EC })
              local ok, err = pcall(spoa.jwt.verify, ES, { alg = "ES256", key = RSA })
              T.eq(ok, false)
              T.ok(err:find("not a P-256 key for ES256", 1, true), err)
              ok, err = pcall(spoa.jwt.verify, ES, { alg = "ES256", key = K1 })
              T.eq(ok, false, "a 256-bit curve that is not P-256")
              T.ok(err:find("not a P-256 key for ES256", 1, true), err)
              T.eq(select(2, spoa.jwt.key("not a key")), "not a PEM public key")
            end)
            """
        let script = try writeScript("-- no handlers")
        let runner = try LuaSpecRunner(configuration: LuaConfiguration(scriptPath: script, workerCount: 1))
        let results = try runner.run(specPath: try writeScript(spec, name: "jwt_pk_spec.lua"))
        XCTAssertEqual(results.map(\.name), ["RS256", "ES256"])
        for result in results where !result.passed { XCTFail("\(result.name): \(result.error ?? "")") }
    }
}
