/// One run's figures, as a human reads them and as scripts parse them.
public struct BenchResult: Sendable {
    public var configuration: BenchConfiguration
    /// False when at least one connection had no pipelining (then one frame in flight each).
    public var pipelining: Bool
    public var elapsedSeconds: Double
    public var sample: BenchSample

    public var messagesPerSecond: Double { Double(sample.acks) / elapsedSeconds }

    /// Round-trip percentile in microseconds.
    public func latency(_ percentile: Double) -> Double {
        Double(sample.histogram.valueAtPercentile(percentile)) / 1000
    }

    public var report: String {
        let c = configuration
        let window = pipelining ? c.inFlight : 1
        var lines = [
            "agent \(c.host):\(c.port): \(c.connections) connection(s) x \(window) in flight"
                + (pipelining || c.inFlight == 1 ? "" : " (the agent does not announce pipelining)")
                + ", message '\(c.message.name)' with \(c.message.arguments.count) argument(s)"
                + (c.expected.map { ", expecting \($0)" } ?? ""),
            "measured \(format(elapsedSeconds, 1)) s after \(format(c.warmup, 1)) s warm-up, \(c.threads) generator thread(s)",
            "messages: \(sample.acks) acknowledged, \(format(messagesPerSecond, 0))/s",
            "round trip (us): p50 \(format(latency(50), 1))  p99 \(format(latency(99), 1))  p99.9 \(format(latency(99.9), 1))"
                + "  max \(format(Double(sample.histogram.max) / 1000, 1))",
            "errors: \(sample.errorCount)",
        ]
        for (error, count) in zip(BenchError.allCases, sample.errors) where count > 0 {
            lines.append("  \(count) x \(error.rawValue)")
        }
        if let first = sample.firstError { lines.append("  first: \(first)") }
        return lines.joined(separator: "\n")
    }

    /// One `key=value` line for scripts (benchmarks/run.sh).
    public var resultLine: String {
        "RESULT msgs_per_s=\(format(messagesPerSecond, 0)) p50_us=\(format(latency(50), 1)) p99_us=\(format(latency(99), 1))"
            + " p999_us=\(format(latency(99.9), 1)) acks=\(sample.acks) errors=\(sample.errorCount)"
            + " pipelining=\(pipelining ? "yes" : "no")"
    }

    private func format(_ value: Double, _ decimals: Int) -> String {
        guard value.isFinite else { return "-" }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let rounded = (value * scale).rounded() / scale
        return decimals == 0 ? String(Int(rounded)) : String(rounded)
    }
}
