#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import NIOCore
import XCTest
@testable import SpopEngine

/// `--busy-poll`: the spinner keeps a CPU busy after a read, and only then.
final class IdleSpinnerTests: XCTestCase {
    static let logger = Logger(label: "test")

    func testSpinsForTheWindowAfterARead() throws {
        let spinner = IdleSpinner(window: .milliseconds(300), logger: Self.logger)
        defer { spinner.stop() }
        let before = Self.processCPUSeconds()
        spinner.noteActivity(at: .now())
        usleep(300_000)
        let spent = Self.processCPUSeconds() - before
        // Alone on a CPU it spins the whole window; a busy machine may starve its
        // SCHED_IDLE priority, but not down to nothing.
        XCTAssertGreaterThan(spent, 0.06, "the spinner kept no CPU busy after a read")
    }

    func testBurnsNoCPUWhenReadsStop() throws {
        let spinner = IdleSpinner(window: .milliseconds(5), logger: Self.logger)
        defer { spinner.stop() }
        spinner.noteActivity(at: .now())
        usleep(50_000)
        let before = Self.processCPUSeconds()
        usleep(300_000)
        let spent = Self.processCPUSeconds() - before
        XCTAssertLessThan(spent, 0.05, "the spinner went on spinning after its window")
        // ... and wakes again for the next read.
        let again = Self.processCPUSeconds()
        // A read stamped 200 ms ahead keeps the 5 ms window open long enough to measure.
        spinner.noteActivity(at: .now() + .milliseconds(200))
        usleep(200_000)
        XCTAssertGreaterThan(Self.processCPUSeconds() - again, 0.04, "the spinner did not wake for a later read")
    }

    func testStopEndsItsThread() throws {
        XCTAssertEqual(Self.spinnerThreads(settlingAt: 0), 0, "a spinner of an earlier test is still alive")
        let spinner = IdleSpinner(window: .milliseconds(50), logger: Self.logger)
        spinner.noteActivity(at: .now())
        XCTAssertEqual(Self.spinnerThreads(settlingAt: 1), 1)
        spinner.stop()
        XCTAssertEqual(Self.spinnerThreads(settlingAt: 0), 0, "the spinner thread outlived stop()")
    }

    func testServerWithBusyPollAnswersAndStopsItsSpinner() async throws {
        XCTAssertEqual(Self.spinnerThreads(settlingAt: 0), 0, "a spinner of an earlier test is still alive")
        try await withServer(busyPoll: .milliseconds(1), { ClosureWorker { _, _, ack in try? ack.setVar(.transaction, "ok", .bool(true)) } }) { _, address in
            XCTAssertEqual(Self.spinnerThreads(settlingAt: 1), 1)
            var bytes = ByteBuffer(hex: Golden.haproxyHello)
            for id in 0..<20 as Range<UInt64> {
                NotifyFrame.write(streamID: id, frameID: 1, messages: [("m", [])], to: &bytes)
            }
            let frames = try await TestClient.exchange(address, bytes, frames: 21)
            XCTAssertEqual(frames.dropFirst().map(\.header.streamID), Array(0..<20))
            XCTAssertEqual(try frames.dropFirst().map { try SpoaAction.decodeList($0.payload) },
                           Array(repeating: [.setVar(.transaction, "ok", .bool(true))], count: 20))
        }
        XCTAssertEqual(Self.spinnerThreads(settlingAt: 0), 0, "the spinner outlived the server's shutdown")
    }

    private static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    /// Spinner threads alive, once their number reached `expected` or after 2 s.
    private static func spinnerThreads(settlingAt expected: Int) -> Int {
        for _ in 0..<200 where spinnerThreads() != expected { usleep(10_000) }
        return spinnerThreads()
    }

    /// Spinner threads alive, found by name.
    private static func spinnerThreads() -> Int {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.filter {
            (try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8))?.hasPrefix(IdleSpinner.threadName) == true
        }.count
    }
}
