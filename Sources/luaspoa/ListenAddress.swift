import ArgumentParser
import SpopEngine

/// `HOST:PORT` (IPv6 hosts in brackets: `[::1]:12345`, empty host = all addresses)
/// or `unix:/path/to/socket`.
struct ListenAddress: ExpressibleByArgument, CustomStringConvertible {
    var address: SpopListenAddress

    init?(argument: String) {
        if argument.hasPrefix("unix:") {
            let path = String(argument.dropFirst(5))
            guard !path.isEmpty else { return nil }
            address = .unix(path: path, mode: nil)
            return
        }
        guard let colon = argument.lastIndex(of: ":"), let port = Int(argument[argument.index(after: colon)...]),
              (0...65535).contains(port)
        else { return nil }
        var host = String(argument[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        address = .tcp(host: host.isEmpty ? "0.0.0.0" : host, port: port)
    }

    var description: String { address.description }

    /// Host and port, for commands that speak TCP only.
    func tcp() throws -> (host: String, port: Int) {
        guard case .tcp(let host, let port) = address else {
            throw ValidationError("\(address) is not a HOST:PORT address")
        }
        return (host, port)
    }

    static var defaultValueDescription: String { "127.0.0.1:12345" }
}
