// An HTTP/1.1 client over a raw socket, and the Prometheus text it reads.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct HTTPResponse {
    var status: Int
    var headers: [(String, String)]
    var body: [UInt8]

    /// The first header with that name (case-insensitive).
    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }
}

/// A keep-alive HTTP/1.1 connection (requests are sent one at a time).
final class HTTPConn {
    let conn: TCPConn
    init(port: UInt16, source: String? = nil) throws { conn = try TCPConn(port: port, source: source) }

    func get(_ path: String = "/", headers: [(String, String)] = [], timeout: Double = 10) throws -> HTTPResponse {
        var req = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for (k, v) in headers { req += "\(k): \(v)\r\n" }
        req += "\r\n"
        guard conn.send(Array(req.utf8)) else { throw WireError("HTTP send failed") }
        guard let head = try conn.readHTTPHead(timeout: timeout) else { throw WireError("HTTP connection closed before a response") }
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { throw WireError("bad status line: \(statusLine)") }
        var hdrs: [(String, String)] = []
        for l in lines {
            guard let c = l.firstIndex(of: ":") else { continue }
            hdrs.append((String(l[..<c]).trimmingCharacters(in: .whitespaces),
                         String(l[l.index(after: c)...]).trimmingCharacters(in: .whitespaces)))
        }
        var resp = HTTPResponse(status: status, headers: hdrs, body: [])
        if let cl = resp.header("content-length").flatMap({ Int($0) }) {
            if cl > 0 {
                guard let body = try conn.readExactly(cl, timeout: timeout) else { throw WireError("EOF in HTTP body") }
                resp.body = body
            }
        } else if resp.header("transfer-encoding")?.lowercased().contains("chunked") == true {
            // chunk-size CRLF data CRLF ... 0 CRLF CRLF (no trailers expected)
            while true {
                guard let sizeLine = try conn.readLine(timeout: timeout),
                      let size = Int(sizeLine.split(separator: ";")[0].trimmingCharacters(in: .whitespaces), radix: 16)
                else { throw WireError("bad chunk size line") }
                if size == 0 { _ = try conn.readLine(timeout: timeout); break }
                guard let chunk = try conn.readExactly(size, timeout: timeout) else { throw WireError("EOF in chunk") }
                resp.body += chunk
                _ = try conn.readLine(timeout: timeout)
            }
        }
        return resp
    }
}

/// One request on a fresh connection.
/// The agent's Prometheus text at /metrics as [series: value], e.g. `luaspoa_messages_total{message="ok"}`.
func prometheusSeries(port: UInt16) throws -> [String: Double] {
    let response = try httpGet(port: port, "/metrics")
    guard response.status == 200 else { throw WireError("/metrics answered \(response.status)") }
    var series: [String: Double] = [:]
    for line in String(decoding: response.body, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
        guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
        series[String(line[..<space])] = value
    }
    return series
}

func httpGet(port: UInt16, _ path: String = "/", headers: [(String, String)] = [], source: String? = nil,
             timeout: Double = 10) throws -> HTTPResponse {
    try HTTPConn(port: port, source: source).get(path, headers: headers, timeout: timeout)
}
