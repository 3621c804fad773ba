// The engine's per-message work, each piece alone, with mallocs counted: decoding
// a NOTIFY, encoding an ACK, the engine path from bytes in to ACK out, the Lua
// dispatch of one message, what suspending a frame adds, the suspend and
// resume of a Lua handler that waits, and the batteries (spoa.re, spoa.json,
// spoa.jwt, spoa.geoip) called once per message.
import Benchmark
import Foundation
import HotPathFixtures
import Logging
import LuaRuntime
import NIOCore
import NIOEmbedded
import SpopEngine

// The malloc counts are checked (benchmarks/check-allocations.sh) against the committed
// baseline .benchmarkBaselines/SpopHotPath/allocations, at every percentile, per sample of
// 1000 messages (the scaled iteration). Each benchmark builds what it needs (a Lua state,
// a connection) before `startMeasurement()`: a sample counts its messages only, not the
// set-up repeated for every sample. Decode, encode and the engine path: no tolerance,
// one malloc more than the baseline fails. Lua dispatch: its own allocations vary by a
// few per 1000 messages with the collector's timing, so a ceiling 10 above the baseline.
// Time is never checked (shared, noisy machines).
let benchmarks: @Sendable () -> Void = {
    let exact = BenchmarkThresholds(absolute: [.p0: 0, .p25: 0, .p50: 0, .p75: 0, .p90: 0, .p99: 0, .p100: 0])
    let luaCeiling = BenchmarkThresholds(absolute: [.p0: 10, .p25: 10, .p50: 10, .p75: 10, .p90: 10, .p99: 10, .p100: 10])

    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal, .throughput],
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        thresholds: [.mallocCountTotal: exact]
    )

    Benchmark("decode a NOTIFY (1 message, ipv4 argument)") { benchmark in
        let step = HotPath.decodeStep()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { step() }
    }

    Benchmark("encode an ACK (one set-var uint32)") { benchmark in
        let step = HotPath.encodeStep()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { step() }
    }

    Benchmark("engine: NOTIFY bytes in -> ACK bytes out (Swift worker)") { benchmark in
        let step = HotPath.engineStep()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { step() }
    }

    // The same ACK through SpoaWorker.answer, answered inline and through a frame
    // suspended in handle and completed after it returned: the difference is the cost
    // of one suspend and completion (the answer's future is in both).
    for suspending in [false, true] {
        Benchmark(suspending ? "answer: suspend() then complete() later" : "answer: inline") { benchmark in
            let loop = EmbeddedEventLoop()
            let worker = Fixtures.SuspendingWorker(suspending: suspending)
            let notify = HotPath.decodedNotify()
            var answered = 0
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                let future = worker.answer(notify, on: loop)
                worker.parked?.complete()
                worker.parked = nil
                future.assumeIsolated().whenSuccess { answered += $0.readableBytes }
            }
            precondition(answered > 0, "no ACK")
        }
    }

    // The batteries' operations, one per message (benchmarks/batteries/batteries.lua.in
    // with @TIMES@ = 1; "empty" is the dispatch alone, to subtract). Their mallocs
    // include the libraries' own (json-c's tree, OpenSSL's contexts) and the Lua
    // values they build, which the collector's timing can share between calls:
    // 5 % above the baseline.
    let batteryCeiling = BenchmarkThresholds(relative: [.p0: 5, .p25: 5, .p50: 5, .p75: 5, .p90: 5, .p99: 5, .p100: 5])
    for op in ["empty", "re", "json", "hs", "rs", "geo", "georec"] {
        Benchmark(
            "battery \(op): one call per message (batteries.lua.in)",
            configuration: .init(thresholds: [.mallocCountTotal: batteryCeiling])
        ) { benchmark in
            let step = HotPath.luaDispatchStep(worker: try! Fixtures.batteryWorker(op))
            var last = 0
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations { last = step() }
            precondition(last > 0, "no ACK")
        }
    }

    for script in ["empty_handler", "ip_reputation"] {
        Benchmark(
            "Lua dispatch of one message (\(script).lua)",
            configuration: .init(thresholds: [.mallocCountTotal: luaCeiling])
        ) { benchmark in
            let step = try! HotPath.luaDispatchStep(script)
            var last = 0
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations { last = step() }
            precondition(last > 12, "the handler set no variable")
        }
    }

    // One frame whose handler does spoa.sleep(1): suspended, its timer fired, resumed,
    // completed (SpoaWorker.answer on an EmbeddedEventLoop: time moves by hand). The
    // count includes the frame's copy, its pending ACK, the timer and the future.
    Benchmark(
        "Lua suspend and resume of one message (sleep1_handler.lua)",
        configuration: .init(thresholds: [.mallocCountTotal: luaCeiling])
    ) { benchmark in
        let worker = try! HotPath.luaWorker("sleep1_handler")
        let loop = EmbeddedEventLoop()
        let notify = HotPath.decodedNotify()
        let info = SpoaConnectionInfo(engineID: "bench-engine")
        var last = 0
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            worker.answer(notify, connection: info, on: loop).assumeIsolated().whenSuccess { last = $0.readableBytes }
            loop.advanceTime(by: .milliseconds(1))
        }
        precondition(last > 12, "the handler set no variable")
    }
}

enum Fixtures {
    /// Sets sess.ip_score; when `suspending`, parks the frame for the caller to complete.
    final class SuspendingWorker: SpoaWorker {
        let suspending: Bool
        var parked: PendingAck?

        init(suspending: Bool) { self.suspending = suspending }

        func handle(_ notify: NotifyFrame, connection: SpoaConnectionInfo, ack: inout AckWriter) {
            HotPath.setScore(&ack)
            if suspending { parked = ack.suspend() }
        }
    }

    /// The inputs of the batteries' benchmarks (benchmarks/batteries/make-inputs.sh),
    /// made once per process in a temporary directory removed at exit.
    static let batteryInputs: String = {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("luaspoa-batteries-\(getpid())").path
        try! FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(atPath: Fixtures.batteryInputsPath) }
        batteryInputsPath = directory
        let make = Process()
        make.executableURL = URL(fileURLWithPath: "\(HotPath.root)/benchmarks/batteries/make-inputs.sh")
        make.arguments = [directory]
        try! make.run()
        make.waitUntilExit()
        precondition(make.terminationStatus == 0, "make-inputs.sh failed")
        return directory
    }()
    nonisolated(unsafe) static var batteryInputsPath = ""

    /// A worker whose check-client-ip handler runs the battery operation `op` once.
    static func batteryWorker(_ op: String) throws -> LuaWorker {
        let directory = batteryInputs
        let template = try String(contentsOfFile: "\(HotPath.root)/benchmarks/batteries/batteries.lua.in", encoding: .utf8)
        let script = template.replacingOccurrences(of: "@OP@", with: op)
            .replacingOccurrences(of: "@DIR@", with: directory).replacingOccurrences(of: "@TIMES@", with: "1")
        let path = "\(directory)/b_\(op).lua"
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        return try HotPath.luaWorker(path: path)
    }
}
