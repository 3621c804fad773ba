import Foundation
import LuaRuntime
import NIOCore
import SpopEngine
import XCTest

/// scripts/bot_detector.lua in a worker: the rule table documented at its top
/// (the same expectations as scripts/bot_detector_spec.lua, runnable today).
final class BotDetectorScriptTests: XCTestCase {
    static let scriptPath = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scripts/bot_detector.lua").path

    func check(_ headers: [(String, String)], src: IPv4Address = IPv4Address(198, 51, 100, 1), ver: String = "1.1",
               raw: [UInt8]? = nil) throws -> [String: SpopValue] {
        let worker = try LuaWorker(scriptPath: Self.scriptPath, workerIndex: 1, workerCount: 1, logger: LogCapture().logger)
        let ua = headers.first { $0.0.lowercased() == "user-agent" }?.1 ?? ""
        let bin = raw ?? HeadersTests.hdrsBin(headers)
        let payload = try handleNotify(worker, [("check-bot", [
            ("src", .ipv4(src)), ("ua", .string(ByteBuffer(string: ua))), ("ver", .string(ByteBuffer(string: ver))),
            ("hdrs", .binary(ByteBuffer(bytes: bin))),
        ])])
        XCTAssertEqual(worker.handlerErrors, 0)
        var vars: [String: SpopValue] = [:]
        for case .setVar(_, let name, let value) in try SpoaAction.decodeList(payload) { vars[name] = value }
        return vars
    }

    func testRules() throws {
        let curl = try check([("Host", "x"), ("User-Agent", "curl/8.5.0"), ("Accept", "*/*")])
        XCTAssertEqual(curl["bot_score"], .int32(80))
        XCTAssertEqual(curl["is_bot"], .bool(true))
        XCTAssertEqual(curl["bot_reason"]?.text, "ua:curl/,no-accept-encoding,few-headers")

        let bare = try check([("Host", "x")], ver: "1.0")
        XCTAssertEqual(bare["bot_score"], .int32(85))
        XCTAssertEqual(bare["bot_reason"]?.text, "no-ua,no-accept,no-accept-encoding,few-headers,http/1.0")

        let chrome = "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0 Safari/537.36"
        let malformed = try check([("User-Agent", chrome)], raw: [5] + Array("Host".utf8))
        XCTAssertEqual(malformed["bot_score"], .int32(85))
        XCTAssertEqual(malformed["bot_reason"]?.text,
                       "bad-headers,browser-no-accept-language,chrome-no-client-hints,no-accept,no-accept-encoding")

        let crawler = try check([("User-Agent", "curl/8.5.0")], src: IPv4Address(192, 0, 2, 200))
        XCTAssertEqual(crawler["bot_score"], .int32(0))
        XCTAssertEqual(crawler["bot_reason"]?.text, "verified-crawler")
    }
}
