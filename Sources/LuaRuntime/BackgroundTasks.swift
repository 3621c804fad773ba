import CLuaSpoa
import Foundation
import Logging

/// The background state (`spoa.worker == 0`) and the thread that runs the
/// script's `spoa.register_task` functions. Tasks may block: they run on their
/// own thread, never on a worker's event loop, and publish through shared dicts
/// and maps. A task may wait (`spoa.sleep`): it runs in a coroutine, and this
/// thread waits for it. A failing task is logged and runs again at its next period.
public final class BackgroundTasks: @unchecked Sendable {
    struct Task {
        var index: Int32
        var every: Int64   // ms, 0: once
        var due: Int64     // ms on the monotonic clock
    }

    private let state: LuaState
    private let logger: Logger
    private let condition = NSCondition()
    private var stopping = false  // guarded by condition
    private var thread: Thread?
    private let finished = DispatchSemaphore(value: 0)
    private var counters = (runs: 0, failures: 0)  // guarded by condition
    /// Task runs completed, with or without error.
    public var runs: Int { condition.withLock { counters.runs } }
    /// Task runs that raised an error (for tests and metrics).
    public var failures: Int { condition.withLock { counters.failures } }

    /// Loads the script into the background state (its init functions run there
    /// too). Throws the same `LuaScriptError` a worker would.
    public convenience init(scriptPath: String, workerCount: Int, logger: Logger) throws {
        try self.init(configuration: LuaConfiguration(scriptPath: scriptPath, workerCount: workerCount), generation: 0, logger: logger)
    }

    /// The background state built from the serve options, as `generation` (reloads).
    /// Tasks have no time budget: they may block.
    public init(configuration: LuaConfiguration, generation: Int, logger: Logger) throws {
        var logger = logger
        logger[metadataKey: "lua.worker"] = "0"
        self.logger = logger
        state = try LuaState(configuration: configuration, workerIndex: 0, generation: generation, logger: logger)
    }

    /// Tasks the script registered.
    public var taskCount: Int { Int(luaspoa_task_count(state.L)) }

    /// Starts the thread (no thread at all when the script has no task).
    public func start() {
        guard thread == nil, taskCount > 0 else { return }
        let thread = Thread { [self] in
            runLoop()
            finished.signal()
        }
        thread.name = "luaspoa-tasks"
        self.thread = thread
        thread.start()
    }

    /// Stops after the running task (if any) returns; waits for the thread.
    public func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
        if thread != nil {
            finished.wait()
            thread = nil
        }
    }

    private func schedule() -> [Task] {
        let now = Self.now()
        return (0..<luaspoa_task_count(state.L)).map { index in
            var every: Int64 = 0
            var atStart: Int32 = 0
            luaspoa_task_schedule(state.L, index, &every, &atStart)
            return Task(index: index, every: every, due: atStart != 0 ? now : now + every)
        }
    }

    private func runLoop() {
        var tasks = schedule()
        while let next = tasks.indices.min(by: { tasks[$0].due < tasks[$1].due }) {
            guard waitUntil(tasks[next].due) else { return }
            run(tasks[next].index)
            if tasks[next].every == 0 {
                tasks.remove(at: next)
            } else {
                // A task that overran its period runs again at once, but only once.
                tasks[next].due = max(tasks[next].due + tasks[next].every, Self.now())
            }
        }
    }

    /// Sleeps until `due` (monotonic ms); false when stopping.
    private func waitUntil(_ due: Int64) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while !stopping {
            let left = due - Self.now()
            if left <= 0 { return true }
            _ = condition.wait(until: Date(timeIntervalSinceNow: Double(left) / 1000))
        }
        return false
    }

    private func run(_ index: Int32) {
        let (status, error) = state.runTask(index, stop: condition, stopping: { self.stopping })
        if let error {
            let (text, traceback) = LuaScriptError.split(error)
            var metadata: Logger.Metadata = ["lua.task": "\(index + 1)"]
            if let traceback { metadata["lua.traceback"] = "\(traceback)" }
            logger.error("task \(index + 1): \(text)", metadata: metadata)
        }
        luaspoa_reclaim(state.L)
        condition.lock()
        counters.runs += 1
        if status == LUASPOA_ERROR { counters.failures += 1 }
        condition.broadcast()
        condition.unlock()
    }

    /// Waits until `count` task runs have completed; false after `timeout` seconds.
    public func waitForRuns(_ count: Int, timeout: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        defer { condition.unlock() }
        while counters.runs < count {
            if !condition.wait(until: deadline) { return counters.runs >= count }
        }
        return true
    }

    /// Scheduling uses the real monotonic clock: a frozen test clock must not stall tasks.
    private static func now() -> Int64 {
        Int64(DispatchTime.now().uptimeNanoseconds / 1_000_000)
    }
}

extension LuaState {
    /// Runs task `index` once on the calling thread, which waits with it
    /// (`LuaWaits.block`); `stop` and `stopping` end a sleep early and close the
    /// task. Returns its status and, when it raised, its error text.
    func runTask(_ index: Int32, stop: NSCondition? = nil, stopping: () -> Bool = { false })
        -> (status: Int32, error: String?)
    {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: LuaState.errorCapacity) { buffer in
            buffer[0] = 0
            var waiting: OpaquePointer?
            var status = luaspoa_run_task(L, index, buffer.baseAddress, buffer.count, &waiting)
            while status == LUASPOA_WAITING, let call = waiting {
                waiting = nil
                guard let result = LuaWaits.block(luaspoa_call_wait(call).pointee, stop: stop, stopping: stopping) else {
                    status = luaspoa_abandon(L, ctx, call, nil, 0, 0, buffer.baseAddress, buffer.count)
                    break
                }
                status = result.withResult(in: luaspoa_call_wait(call)) {
                    luaspoa_resume(L, ctx, call, nil, 0, nil, 0, buffer.baseAddress, buffer.count, &waiting)
                }
            }
            return (status, status == LUASPOA_ERROR ? String(cString: buffer.baseAddress!) : nil)
        }
    }
}
