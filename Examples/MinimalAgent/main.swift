// The smallest SPOE agent: no Lua, one handler per message name. It answers
// haproxy/spoe-ip-reputation.conf's `check-client-ip` with sess.ip_score.
//
//   swift run minimal-agent-example [PORT]      # 127.0.0.1:12345 by default
import Logging
import ServiceLifecycle
import SpopEngine

let logger = Logger(label: "minimal-agent")
let port = CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 12345
let server = try SpopServer(configuration: .init(host: "127.0.0.1", port: port), logger: logger) { _ in
    MessageRouter(logger: logger).on("check-client-ip") { message, _, ack in
        let ip = message.arguments.first { $0.nameString == "ip" }?.value
        let trusted = if case .ipv4(let address) = ip { address.description.hasPrefix("127.") } else { false }
        try ack.setVar(.session, "ip_score", .uint32(trusted ? 100 : 50))
    }
}
try await ServiceGroup(services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger).run()
