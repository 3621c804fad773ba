// A Swift SPOE agent without Lua whose handler awaits: it answers `check-client-ip`
// (haproxy/spoe-ip-reputation.conf) with sess.ip_score and sess.ip_family after
// asking a reputation service. The service here is in-process and takes
// --delay-ms to answer, standing in for a database or web-service lookup.
//
//   swift run async-agent-example --listen 127.0.0.1:12345 --delay-ms 50
//
// While one lookup waits, the worker goes on with other frames and connections:
// AsyncClosureWorker suspends each frame and writes its ACK when the closure returns.
import Logging
import NIOCore
import ServiceLifecycle
import SpopEngine

/// The slow dependency: a score per client address, after a delay.
actor ReputationService {
    let delay: Duration

    init(delay: Duration) { self.delay = delay }

    func score(of address: SpopValue) async throws -> Int32 {
        try await Task.sleep(for: delay)
        switch address {
        case .ipv4(let ip) where ip.description.hasPrefix("127."): return 100  // loopback: trusted
        case .ipv4(let ip) where ip.description.hasPrefix("192.0.2."): return 0  // TEST-NET-1: known bad
        default: return 50
        }
    }
}

struct Options {
    var host = "127.0.0.1"
    var port = 12345
    var delayMilliseconds = 50
    var workers = System.coreCount

    init(_ arguments: ArraySlice<String>) throws {
        var arguments = arguments
        while let flag = arguments.popFirst() {
            guard let value = arguments.popFirst() else { throw UsageError("\(flag) needs a value") }
            switch flag {
            case "--listen":
                guard let colon = value.lastIndex(of: ":"), let port = Int(value[value.index(after: colon)...]) else {
                    throw UsageError("--listen HOST:PORT")
                }
                (host, self.port) = (String(value[..<colon]), port)
            case "--delay-ms": delayMilliseconds = try Self.number(flag, value)
            case "--workers": workers = try Self.number(flag, value)
            default: throw UsageError("unknown option \(flag)")
            }
        }
    }

    private static func number(_ flag: String, _ value: String) throws -> Int {
        guard let number = Int(value), number >= 0 else { throw UsageError("\(flag) needs a number, got \(value)") }
        return number
    }
}

struct UsageError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = "usage: async-agent-example [--listen HOST:PORT] [--delay-ms N] [--workers N]: \(description)" }
}

let options = try Options(CommandLine.arguments.dropFirst())
let logger = Logger(label: "async-agent")
let service = ReputationService(delay: .milliseconds(options.delayMilliseconds))
let configuration = SpopServerConfiguration(host: options.host, port: options.port, workers: options.workers)
let server = try SpopServer(configuration: configuration, logger: logger) { _ in
    AsyncClosureWorker(logger: logger) { notify, _ in
        var actions: [SpoaAction] = []
        for message in notify.messages where message.nameString == "check-client-ip" {
            guard let ip = message.arguments.first(where: { $0.nameString == "ip" })?.value else { continue }
            actions.append(.setVar(.session, "ip_score", .int32(try await service.score(of: ip))))
            if case .ipv6 = ip {
                actions.append(.setVar(.session, "ip_family", .string("ipv6")))
            } else {
                actions.append(.setVar(.session, "ip_family", .string("ipv4")))
            }
        }
        return actions
    }
}
try await ServiceGroup(
    services: [server], gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [], logger: logger
).run()
