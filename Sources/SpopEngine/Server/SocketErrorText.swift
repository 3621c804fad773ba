import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The system's own words for a socket error ("Address already in use"), without
/// NIO's wrapper text (`bind(descriptor:ptr:bytes:)`, `SingleConnectionFailure(...)`),
/// for messages that name the address themselves.
public func socketErrorText(_ error: any Error) -> String {
    switch error {
    case let error as IOError:
        return String(cString: strerror(error.errnoCode))
    case let error as NIOConnectionError:
        if let failure = error.connectionErrors.first { return socketErrorText(failure.error) }
        if let dns = error.dnsAError ?? error.dnsAAAAError { return "cannot resolve \(error.host): \(dns)" }
        return "no address for \(error.host)"
    default:
        return "\(error)"
    }
}
