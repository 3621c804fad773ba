#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import NIOCore
import SpopTestFrames
import XCTest
@testable import SpopEngine

/// `--busy-poll`: the spinner keeps a CPU busy after a read, and only then.
final class BusyPollerTests: XCTestCase {
    static let logger = Logger(label: "test")

    // The spinner runs at SCHED_IDLE, so on a busy machine it may get no CPU at all:
    // that it spins is read from what it asks for (its thread runnable, "R", never
    // asleep, "S", in /proc), not from the CPU time the scheduler granted it. That it
    // stops is read from CPU time, which starvation can only lower.

    func testSpinsForTheWindowAfterARead() throws {
        let spinner = BusyPoller(window: .milliseconds(300), logger: Self.logger)
        defer { spinner.stop() }
        spinner.noteActivity(at: .now())
        let states = Self.spinnerStates(every: .milliseconds(20), for: .milliseconds(200))
        XCTAssertFalse(states.isEmpty, "no spinner thread")
        XCTAssertFalse(states.contains("S"), "the spinner slept within its window after a read: \(states)")
    }

    func testBurnsNoCPUWhenReadsStop() throws {
        let spinner = BusyPoller(window: .milliseconds(5), logger: Self.logger)
        defer { spinner.stop() }
        spinner.noteActivity(at: .now())
        usleep(50_000)
        let before = Self.processCPUSeconds()
        usleep(300_000)
        XCTAssertLessThan(Self.processCPUSeconds() - before, 0.05, "the spinner went on spinning after its window")
        // ... and wakes again for the next read: a read stamped 300 ms ahead keeps the
        // 5 ms window open long enough to look.
        spinner.noteActivity(at: .now() + .milliseconds(300))
        usleep(20_000)
        let woken = Self.spinnerStates(every: .milliseconds(20), for: .milliseconds(200))
        XCTAssertFalse(woken.contains("S"), "the spinner did not wake for a later read: \(woken)")
    }

    func testStopEndsItsThread() throws {
        XCTAssertEqual(Self.spinnerThreads(settlingAt: 0), 0, "a spinner of an earlier test is still alive")
        let spinner = BusyPoller(window: .milliseconds(50), logger: Self.logger)
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

    /// The scheduler state letters ("R", "S", ...) of the spinner thread, read from
    /// /proc every `interval` for `duration`.
    private static func spinnerStates(every interval: TimeAmount, for duration: TimeAmount) -> [String] {
        var states: [String] = []
        for _ in 0..<(duration.nanoseconds / interval.nanoseconds) {
            for task in spinnerTasks() {
                // /proc/self/task/TID/stat: "TID (comm) STATE ..."; comm has no ")" here.
                if let stat = try? String(contentsOfFile: "/proc/self/task/\(task)/stat", encoding: .utf8),
                   let close = stat.firstIndex(of: ")") {
                    states.append(String(stat[stat.index(close, offsetBy: 2)]))
                }
            }
            usleep(UInt32(interval.nanoseconds / 1000))
        }
        return states
    }

    /// Spinner threads alive, once their number reached `expected` or after 2 s.
    private static func spinnerThreads(settlingAt expected: Int) -> Int {
        for _ in 0..<200 where spinnerThreads() != expected { usleep(10_000) }
        return spinnerThreads()
    }

    /// Spinner threads alive, found by name.
    private static func spinnerThreads() -> Int { spinnerTasks().count }

    private static func spinnerTasks() -> [String] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.filter {
            (try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8))?.hasPrefix(BusyPoller.threadName) == true
        }
    }
}
