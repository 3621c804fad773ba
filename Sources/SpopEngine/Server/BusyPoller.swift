#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// Keeps one CPU from halting for a short window after each read (`--busy-poll`).
///
/// Why: on virtual machines without guest halt-polling, an idle vCPU halts, and
/// waking a thread whose vCPU halted costs tens of microseconds, paid by every
/// request that reaches an idle agent (a C echo server here: 62 us round trip; 16 us
/// with one spinning thread beside it). HAProxy's own `busy-polling` answers the same
/// problem by never sleeping. This spinner is gentler: it runs at `SCHED_IDLE`
/// priority, so it only takes CPU time nothing else wants (the kernel preempts it at
/// once for any other thread), and only for `window` after the last read; then it
/// sleeps until the next one. The price is CPU time that shows in `top`.
final class BusyPoller: Sendable {
    private let window: UInt64
    /// Spin until this many nanoseconds of `CLOCK_MONOTONIC`.
    private let until = Atomic<UInt64>(0)
    private let sleeping = Atomic<Bool>(false)
    private let stopped = Atomic<Bool>(false)
    /// 1 when a sleeping spinner is asked to wake.
    private let wake = ConditionLock(value: 0)
    private let logger: Logger

    /// Starts the spinner thread; `stop()` ends it.
    init(window: TimeAmount, logger: Logger) {
        self.window = UInt64(max(0, window.nanoseconds))
        self.logger = logger
        let unmanaged = Unmanaged.passRetained(self)
        var thread = pthread_t()
        let created = pthread_create(&thread, nil, { argument in
            let spinner = Unmanaged<BusyPoller>.fromOpaque(argument!).takeRetainedValue()
            spinner.run()
            return nil
        }, unmanaged.toOpaque())
        if created == 0 {
            pthread_detach(thread)
        } else {
            unmanaged.release()
        }
    }

    /// A read happened `now`: keep a CPU awake until `now + window`.
    @inline(__always)
    func noteActivity(at now: NIODeadline) {
        until.store(now.uptimeNanoseconds + window, ordering: .sequentiallyConsistent)
        if sleeping.load(ordering: .sequentiallyConsistent) {
            wake.lock()
            wake.unlock(withValue: 1)
        }
    }

    func stop() {
        stopped.store(true, ordering: .sequentiallyConsistent)
        wake.lock()
        wake.unlock(withValue: 1)
    }

    /// The spinner thread's name, as `top -H` and /proc show it.
    static let threadName = "busy-poll"

    private func run() {
        Self.nameThisThread()
        var lowest = sched_param()
        // A spinner at normal priority would take CPU from the workers: none then.
        guard sched_setscheduler(0, 5 /* SCHED_IDLE, hidden by glibc without _GNU_SOURCE */, &lowest) == 0 else {
            logger.warning("busy polling is off: SCHED_IDLE priority refused (errno \(errno))")
            return stopped.store(true, ordering: .sequentiallyConsistent)
        }
        while !stopped.load(ordering: .relaxed) {
            // No PAUSE here: under KVM, pause loops trigger pause-loop exits, which
            // deschedule the vCPU, the very thing this avoids.
            while Self.monotonicNanoseconds() < until.load(ordering: .relaxed), !stopped.load(ordering: .relaxed) {}
            sleeping.store(true, ordering: .sequentiallyConsistent)
            // A read may have moved `until` after the loop above looked: check again
            // after announcing the sleep (its writer checks `sleeping` after the store).
            if Self.monotonicNanoseconds() < until.load(ordering: .sequentiallyConsistent) {
                sleeping.store(false, ordering: .relaxed)
                continue
            }
            wake.lock(whenValue: 1)
            wake.unlock(withValue: 0)
            sleeping.store(false, ordering: .relaxed)
        }
    }

    /// pthread_setname_np is hidden without _GNU_SOURCE; the kernel offers the same.
    private static func nameThisThread() {
        let file = open("/proc/thread-self/comm", O_WRONLY)
        guard file >= 0 else { return }
        _ = threadName.withCString { write(file, $0, strlen($0)) }
        close(file)
    }

    /// The clock `NIODeadline.now()` reads.
    private static func monotonicNanoseconds() -> UInt64 {
        NIODeadline.now().uptimeNanoseconds
    }
}
