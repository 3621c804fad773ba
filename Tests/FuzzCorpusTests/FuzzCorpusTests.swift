import Foundation
import SpopFuzzTargets
import XCTest

/// Replays the fuzz corpus (seeds plus every input the long runs kept, Fuzz/corpus/)
/// through the libFuzzer entry points, without the fuzzing toolchain: a regression in
/// the decoder or the Lua dispatch on any of them fails here (a precondition traps).
final class FuzzCorpusTests: XCTestCase {
    static let corpus = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz/corpus")

    func testFrameCorpusReplays() throws {
        let count = try FuzzTarget.replay(.frames, paths: [Self.corpus.appendingPathComponent("frames").path])
        XCTAssertGreaterThanOrEqual(count, 10, "the seed corpus is missing")
    }

    func testLuaCorpusReplays() throws {
        let count = try FuzzTarget.replay(.lua, paths: [Self.corpus.appendingPathComponent("lua").path])
        XCTAssertGreaterThanOrEqual(count, 3, "the seed corpus is missing")
    }
}
