import ArgumentParser
import Logging
import NIOCore
import ServiceLifecycle
import SpopBench
import SpopEngine

/// `luaspoa bench`: plays HAProxy's side of SPOP against any agent and reports
/// messages/s, round-trip percentiles and errors.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Load-test any SPOP agent (luaspoa or another) as HAProxy would.",
        discussion: """
            Examples:
              luaspoa bench --connect 127.0.0.1:12345 --connections 4 --in-flight 64 --expect sess.ip_score
              luaspoa bench --message request --message-name check-request --expect txn.req_score
              luaspoa bench trivial-agent --listen 127.0.0.1:12346   # a Swift agent with no Lua, to bench the bench
            """,
        subcommands: [Run.self, TrivialAgent.self],
        defaultSubcommand: Run.self
    )

    enum Shape: String, ExpressibleByArgument, CaseIterable {
        /// One IPv4 argument named ip.
        case ipv4
        /// ip (ipv4), path (string), ua (binary), port (int32).
        case request
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "run", abstract: "Run one load test (the default).")

        @Option(help: "The agent's address (HOST:PORT).")
        var connect = ListenAddress(argument: "127.0.0.1:12345")!

        @Option(help: "TCP connections to the agent.")
        var connections = 1

        @Option(help: "NOTIFY frames in flight per connection (1 if the agent does not announce pipelining).")
        var inFlight = 1

        @Option(help: "Seconds measured.")
        var duration = 10.0

        @Option(help: "Seconds of load before measuring.")
        var warmup = 1.0

        @Option(help: "Load-generator threads (default: one per core, at most one per connection).")
        var threads: Int?

        @Option(help: "Message shape: ipv4 (one address) or request (ip, path string, user-agent binary, port int).")
        var message: Shape = .ipv4

        @Option(help: "Message name (default: check-client-ip for ipv4, check-request for request).")
        var messageName: String?

        @Option(help: "A variable (scope.name) every ACK must set; ACKs without it count as errors.")
        var expect: String?

        @Option(help: "max-frame-size offered in HAPROXY-HELLO.")
        var maxFrameSize = 16380

        func validate() throws {
            guard connections >= 1, inFlight >= 1 else { throw ValidationError("--connections and --in-flight must be at least 1") }
            guard duration > 0, warmup >= 0 else { throw ValidationError("--duration must be positive and --warmup not negative") }
            if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
            if let expect, ExpectedVariable(expect) == nil {
                throw ValidationError("--expect must be scope.name with scope proc, sess, txn, req or res, got '\(expect)'")
            }
        }

        func run() async throws {
            let shape: BenchMessage = switch message {
            case .ipv4: messageName.map { .ipv4(name: $0) } ?? .ipv4()
            case .request: messageName.map { .request(name: $0) } ?? .request()
            }
            let (host, port) = try connect.tcp()
            let configuration = BenchConfiguration(
                host: host, port: port, connections: connections, inFlight: inFlight,
                duration: duration, warmup: warmup, threads: threads ?? min(connections, System.coreCount),
                message: shape, expected: expect.flatMap(ExpectedVariable.init), maxFrameSize: maxFrameSize)
            let result = try await BenchRunner(configuration: configuration).run()
            print(result.report)
            print(result.resultLine)
            if result.sample.errorCount > 0 || result.sample.acks == 0 { throw ExitCode(2) }
        }
    }

    /// The cheapest possible agent: sets sess.ip_score (and txn.req_score) without
    /// Lua, so that a benchmark against it measures the load generator's ceiling.
    struct TrivialAgent: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "trivial-agent", abstract: "Serve a Swift agent that answers every message with constants.")

        @Option(help: "Address to listen on (HOST:PORT).")
        var listen = ListenAddress(argument: "127.0.0.1:12346")!

        @Option(help: "Worker threads.")
        var workers = System.coreCount

        func run() async throws {
            let logger = Logger(label: "luaspoa.trivial-agent")
            let configuration = SpopServerConfiguration(address: listen.address, workers: workers)
            let server = try SpopServer(configuration: configuration, logger: logger) { _ in
                ClosureWorker { notify, _, ack in
                    for _ in notify.messages {
                        try? ack.setVar(.session, "ip_score", .uint32(50))
                        try? ack.setVar(.transaction, "req_score", .uint32(50))
                    }
                }
            }
            try await ServiceGroup(
                services: [server], gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [], logger: logger
            ).run()
        }
    }
}
