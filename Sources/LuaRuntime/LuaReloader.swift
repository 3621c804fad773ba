import CoreMetrics
import Logging
import SpopEngine

/// Hot reload: loads the script into a fresh state for every worker and a fresh
/// background state (init functions run in each), and only if all of them loaded,
/// installs each worker's on its event loop between two frames and restarts the
/// tasks on the new background state. A failing reload keeps the running states
/// and logs why (file:line). Shared dicts live outside the states and survive.
public actor LuaReloader {
    public let configuration: LuaConfiguration
    private let server: SpopServer<LuaWorker>
    private var background: BackgroundTasks?
    private let logger: Logger
    /// Successful reloads so far (`spoa.generation` of the running states).
    public private(set) var generation = 0
    private let reloadsOK = Counter(label: "luaspoa_reloads_total", dimensions: [("result", "ok")])
    private let reloadsFailed = Counter(label: "luaspoa_reloads_total", dimensions: [("result", "failed")])

    public init(configuration: LuaConfiguration, server: SpopServer<LuaWorker>, background: BackgroundTasks?, logger: Logger) {
        self.configuration = configuration
        self.server = server
        self.background = background
        self.logger = logger
    }

    /// Stops the current background tasks (at shutdown).
    public func stopTasks() {
        background?.stop()
    }

    /// The background state and one state per worker for `generation`, all from
    /// one read of the script file: a file changing during the reload cannot
    /// leave states on different versions.
    static func prepare(
        _ configuration: LuaConfiguration, generation: Int, logger: Logger
    ) throws -> (background: BackgroundTasks, workers: [LuaWorker.PreparedState]) {
        var configuration = configuration
        try configuration.readScript()
        let background = try BackgroundTasks(configuration: configuration, generation: generation, logger: logger)
        let workers = try (0..<configuration.workerCount).map { index in
            try LuaWorker.prepare(configuration, workerIndex: index + 1, generation: generation, logger: logger)
        }
        return (background, workers)
    }

    /// Returns whether the new script is now serving.
    @discardableResult
    public func reload() async -> Bool {
        let next = generation + 1
        let prepared: [LuaWorker.PreparedState]
        let newBackground: BackgroundTasks
        do {
            (newBackground, prepared) = try Self.prepare(configuration, generation: next, logger: logger)
        } catch {
            logger.error("reload failed, generation \(generation) keeps serving: \(error)")
            reloadsFailed.increment()
            return false
        }
        do {
            let states = prepared
            try await server.onEachWorker { index, worker in
                worker.install(states[index])
            }
        } catch {
            logger.error("reload interrupted (server stopping): \(error)")
            return false
        }
        background?.stop()
        background = newBackground
        newBackground.start()
        generation = next
        reloadsOK.increment()
        logger.notice("reloaded \(configuration.scriptPath): generation \(next) serving on \(prepared.count) workers")
        return true
    }
}
