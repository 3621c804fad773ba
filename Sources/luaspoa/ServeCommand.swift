import ArgumentParser
import Dispatch
import Logging
import LuaRuntime
import NIOCore
import ServiceLifecycle
import UnixSignals
#if canImport(Glibc)
import Glibc
#endif
import SpopEngine

/// Serves SPOP on a TCP address, answering NOTIFY frames with the user's Lua script.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Run the agent (the default command).",
        discussion: """
            Every option can also come from a YAML file (--config FILE, or LUASPOA_CONFIG)
            and from LUASPOA_<NAME> environment variables; a flag beats the environment,
            which beats the file. Examples:
              luaspoa --script agent.lua --metrics 127.0.0.1:9612 --log-format json
              luaspoa --config /etc/luaspoa/luaspoa.yaml --workers 4
              LUASPOA_LISTEN=0.0.0.0:12345 LUASPOA_LUA_TIMEOUT=50 luaspoa --config luaspoa.yaml
            """)

    @Option(help: "The Lua agent script.")
    var script: String

    @Option(help: "Address to listen on: HOST:PORT (loopback by default) or unix:/path/to/socket.")
    var listen = ListenAddress(argument: "127.0.0.1:12345")!

    @Option(help: "Worker threads, each with its own Lua state.")
    var workers = System.coreCount

    @Option(help: "Largest frame accepted and sent (256 to 16777215; HAProxy's default is 16380).")
    var maxFrameSize = AgentCapabilities.defaultMaxFrameSize

    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    @Option(help: "Log lines as text or json (one object per line).")
    var logFormat: LogFormat = .text

    @Option(help: ArgumentHelp("Serve Prometheus metrics at http://HOST:PORT/metrics and /health (off by default).",
                               valueName: "host:port"))
    var metrics: ListenAddress?

    @Option(help: ArgumentHelp("YAML file of defaults for these options (flag > LUASPOA_* environment > file).",
                               valueName: "file"))
    var config: String?

    @Flag(help: ArgumentHelp(
        "Announce the async capability (HAProxy 2.6-3.0): an ACK may then leave on another connection of the same engine-id (see --async-ack and the README).",
        discussion: "HAProxy 2.6 taking ACKs on sibling connections is proven under load (--async-ack spread); 3.1+ never negotiates async."))
    var async = false

    @Option(help: ArgumentHelp(
        "With --async, where ACKs leave: own = on the NOTIFY's connection, and on the sibling of the same engine-id with the least pending output when that connection is not writable or is closing; spread = round-robin over all the engine's connections (a distribution/testing mode).",
        valueName: "own|spread"))
    var asyncAck: AsyncAckMode = .own

    @Option(help: ArgumentHelp(
        "After each read, keep one CPU busy for this many microseconds at SCHED_IDLE priority (0: off), like HAProxy's busy-polling: lower latency on VMs whose idle CPUs halt, at the price of CPU.",
        valueName: "us"))
    var busyPoll = 0

    @Option(help: "The SPOE agent's \"option var-prefix\": variable names are then checked against HAProxy's 63-byte limit.")
    var varPrefix: String?

    @Flag(inversion: .prefixedNo, help: "Announce the pipelining capability.")
    var pipelining = true

    @Flag(inversion: .prefixedNo, help: "Announce fragmentation (reassembly of fragmented NOTIFY frames).")
    var fragmentation = true

    @Option(help: ArgumentHelp("Largest reassembled fragmented NOTIFY; a larger one gets status 3 (too big).", valueName: "bytes"))
    var maxNotifySize = AgentCapabilities().maxReassembledSize

    @OptionGroup(title: "Connection limits and shutdown")
    var server: ServerOptions

    @OptionGroup(title: "Lua limits and failures")
    var lua: LuaOptions

    @Option(help: ArgumentHelp("Write the agent's PID to this file; `luaspoa reload --pid-file FILE` then reloads the script.",
                               valueName: "file"))
    var pidFile: String?

    func validate() throws {
        guard (256...0xFF_FFFF).contains(maxFrameSize) else {
            throw ValidationError("--max-frame-size must be between 256 and 16777215, got \(maxFrameSize)")
        }
        if asyncAck == .spread, !async { throw ValidationError("--async-ack spread needs --async") }
        guard (0...1_000_000).contains(busyPoll) else {
            throw ValidationError("--busy-poll must be between 0 and 1000000 microseconds, got \(busyPoll)")
        }
        guard workers >= 1 else { throw ValidationError("--workers must be at least 1") }
        guard maxNotifySize >= maxFrameSize else {
            throw ValidationError("--max-notify-size must be at least --max-frame-size (\(maxFrameSize)), got \(maxNotifySize)")
        }
        if let varPrefix, varPrefix.isEmpty || !varPrefix.utf8.allSatisfy({ $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }) {
            throw ValidationError("--var-prefix must be non-empty and use only A-Z a-z 0-9 . _, got \"\(varPrefix)\"")
        }
    }

    func run() async throws {
        logFormat.bootstrap(level: logLevel)
        let registry = metrics.map { _ in MetricsBootstrap.start() }
        let logger = Logger(label: "luaspoa")
        var lua = lua.configuration(script: script, workers: workers, varPrefix: varPrefix)
        // The background state (spoa.worker 0) loads first: a script that cannot
        // load fails here, before serving. It runs the script's tasks. Every state
        // loads the bytes read here, so all of them run the same version.
        let background: BackgroundTasks
        do {
            try lua.readScript()
            background = try BackgroundTasks(configuration: lua, generation: 0, logger: logger)
        } catch {
            throw ScriptError(message: "\(error)")
        }
        background.start()

        var configuration = SpopServerConfiguration(
            address: server.address(listen), workers: workers,
            capabilities: AgentCapabilities(
                maxFrameSize: maxFrameSize, pipelining: pipelining, fragmentation: fragmentation,
                maxReassembledSize: maxNotifySize, async: async),
            limits: server.limits
        )
        configuration.asyncAck = asyncAck
        configuration.busyPoll = .microseconds(Int64(busyPoll))
        // The HTTP client's connections live on the worker loops: closed before
        // those end (later requests of background tasks fail "the agent is stopping").
        configuration.beforeThreadsStop = { await LuaHTTP.shutdown() }
        let withMetrics = registry != nil
        let server = try SpopServer(configuration: configuration, logger: logger) { [lua] index in
            let worker = try LuaWorker(configuration: lua, workerIndex: index + 1, logger: logger)
            if withMetrics { worker.metrics = MessageMetrics(worker: index + 1) }
            return worker
        }
        let reloader = LuaReloader(configuration: lua, server: server, background: background, logger: logger)
        let reloads = await ReloadService(reloader: reloader)
        let pidFile = try pidFile.map(PIDFile.init(creating:))
        defer { pidFile?.remove() }
        var services: [any Service] = [server, reloads]
        if let registry, let metrics {
            services.append(try await MetricsEndpoint.bind(address: metrics, registry: registry,
                                                           beforeScrape: MetricsBootstrap.refreshGauges, logger: logger))
        }
        let group = ServiceGroup(
            services: services,
            gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [], logger: logger
        )
        let drainTimeout = self.server.drainTimeout
        let secondSignal = Task {
            await Self.boundShutdown(drainTimeout: drainTimeout, stage: { server.shutdownStage }, logger: logger) {
                pidFile?.remove()  // exit() skips the defer below
            }
        }
        defer { secondSignal.cancel() }
        do {
            try await group.run()
        } catch {
            await reloader.stopTasks()
            await Upstream.shutdown()
            throw error
        }
        await reloader.stopTasks()
        // After the tasks: they may still be making requests.
        await Upstream.shutdown()
    }
}

extension ServeCommand {
    /// Time past --drain-timeout a stop may take (threads ending, background tasks).
    static let shutdownMargin = 2.0

    /// The first SIGTERM/SIGINT drains (ServiceGroup) within --drain-timeout; a stop that
    /// still runs 2 s later (a worker stuck in a handler, a stuck reload) ends the process
    /// with status 0: the drain is over, only threads that cannot stop remain. A second
    /// signal means "now" (status 1).
    static func boundShutdown(
        drainTimeout: Double, stage: @escaping @Sendable () -> String?, logger: Logger, beforeExit: @escaping @Sendable () -> Void
    ) async {
        var seen = 0
        for await signal in await UnixSignalsSequence(trapping: .sigterm, .sigint) {
            seen += 1
            if seen >= 2 {
                logger.warning("second \(signal): exiting without waiting for the drain")
                beforeExit()
                Glibc.exit(1)
            }
            let limit = drainTimeout + shutdownMargin
            // A Dispatch timer, not a task: it must fire even if the task pool is starved.
            DispatchQueue.global().asyncAfter(deadline: .now() + limit) {
                let stuck = stage().map { $0 == "stopped" ? "the Lua background tasks or a reload" : $0 } ?? "the service group"
                logger.warning("shutdown did not finish within --drain-timeout + \(shutdownMargin) s (\(limit) s): stuck \(stuck); exiting")
                beforeExit()
                Glibc.exit(0)
            }
        }
    }
}

/// A script that cannot load: printed as it is (it names file and line), exit status 1.
struct ScriptError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
extension AsyncAckMode: ExpressibleByArgument {}
