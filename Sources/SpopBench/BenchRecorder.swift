import Histogram

/// What the connections of one load-generator thread measured; they share it, so
/// a thousand connections cost one histogram per thread, not one each.
final class BenchRecorder {
    /// Round trips of measured frames: from the NOTIFY's write to its ACK's read.
    private(set) var sample = BenchSample()
    /// ACKs and errors count only while measuring (not during warm-up or shutdown).
    var measuring = false
    /// Set at the end: connections stop sending new NOTIFYs.
    var stopping = false

    func record(latencyNanoseconds: UInt64) {
        guard measuring else { return }
        sample.acks += 1
        _ = sample.histogram.record(latencyNanoseconds)
    }

    func record(_ error: BenchError, detail: String? = nil) {
        guard measuring else { return }
        sample.errors[error.index] += 1
        if sample.firstError == nil { sample.firstError = detail.map { "\(error.rawValue): \($0)" } ?? error.rawValue }
    }

    func reset() { sample = BenchSample() }
}

/// Counts and latencies, mergeable across threads.
public struct BenchSample: Sendable {
    public var acks = 0
    public var errors = [Int](repeating: 0, count: BenchError.allCases.count)
    public var firstError: String?
    /// Nanoseconds; 3 significant digits up to one minute.
    public var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)

    public var errorCount: Int { errors.reduce(0, +) }

    mutating func merge(_ other: BenchSample) {
        acks += other.acks
        for index in errors.indices { errors[index] += other.errors[index] }
        firstError = firstError ?? other.firstError
        histogram.add(other.histogram)
    }
}

extension BenchError {
    var index: Int { Self.allCases.firstIndex(of: self)! }
}
