// Ports on 127.0.0.1: a free one, its sockaddr, waiting for a listener.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Bind port 0 on 127.0.0.1 and read back the port the kernel chose.
func freePort() throws -> UInt16 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw WireError("socket: errno \(errno)") }
    defer { close(fd) }
    var addr = loopbackAddress(port: 0)
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc == 0 else { throw WireError("bind: errno \(errno)") }
    var out = sockaddr_in()
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &out) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
    }
    return UInt16(bigEndian: out.sin_port)
}

/// A socket listening on a free port of 127.0.0.1, and that port.
func listeningSocket() throws -> (fd: Int32, port: UInt16) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw WireError("socket: errno \(errno)") }
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    var addr = loopbackAddress(port: 0)
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc == 0, listen(fd, 128) == 0 else { close(fd); throw WireError("bind/listen: errno \(errno)") }
    var out = sockaddr_in()
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &out) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
    }
    return (fd, UInt16(bigEndian: out.sin_port))
}

/// `host` (an IPv4 address of 127.0.0.0/8 for the tests) and `port`.
func loopbackAddress(port: UInt16, host: String = "127.0.0.1") -> sockaddr_in {
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = port.bigEndian
    addr.sin_addr.s_addr = inet_addr(host)
    return addr
}

/// Poll until something accepts TCP connections on `port`.
func waitForPort(_ port: UInt16, timeout: Double, while alive: () -> Bool = { true }) -> Bool {
    let deadline = nowSeconds() + timeout
    while nowSeconds() < deadline {
        if !alive() { return false }
        if let c = try? TCPConn(port: port) { c.shutdownAndClose(); return true }
        usleep(50_000)
    }
    return false
}
