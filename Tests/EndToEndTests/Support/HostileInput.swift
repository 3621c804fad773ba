// Generators of hostile SPOP byte streams for HostileInputTests: each case is what
// one malicious or broken peer sends on one connection, with the AGENT-DISCONNECT
// status the agent must answer (nil: the stream stops mid-frame, so the agent can
// only wait; the client closes).

import Foundation
import SpopTestFrames

struct HostileCase {
    var name: String
    var bytes: [UInt8]
    var status: UInt64?
}

extension SplitMix64 {
    mutating func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) } }
}

enum HostileInput {
    static let hello = haproxyHello(capabilities: "pipelining,fragmentation")
    static let notify = hexBytes(Golden.notifyCheckClientIP)

    /// A valid conversation cut after every byte (the peer then closes).
    static func truncations() -> [HostileCase] {
        let stream = hello + notify + hexBytes(Golden.fragmentFirst) + hexBytes(Golden.fragmentLast)
        return (0..<stream.count).map { HostileCase(name: "cut after \($0) bytes", bytes: Array(stream[..<$0]), status: nil) }
    }

    /// LEN values the agent must refuse before reading a body, before and after HELLO.
    static func oversizeLengths() -> [HostileCase] {
        let tooBig: [UInt32] = [16381, 65536, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF]
        let tooShort: [UInt32] = [0, 1, 6]
        var cases: [HostileCase] = []
        for (prefix, when) in [([UInt8](), "before HELLO"), (hello, "after HELLO")] {
            cases += tooBig.map { HostileCase(name: "LEN \($0) \(when)", bytes: prefix + be32($0) + [3, 0, 0, 0, 1, 1, 1], status: 3) }
            cases += tooShort.map { HostileCase(name: "LEN \($0) \(when)", bytes: prefix + be32($0) + [UInt8](repeating: 3, count: Int($0)), status: 4) }
        }
        return cases
    }

    /// Varints of 11+ bytes and varints that overflow 64 bits, in ids and in values.
    static func badVarints() -> [HostileCase] {
        let endless = [UInt8](repeating: 0xFF, count: 12)             // never terminates within 10 bytes
        let overflow: [UInt8] = [0xF0] + [UInt8](repeating: 0xFF, count: 8) + [0x7F]  // > UInt64.max
        var cases: [HostileCase] = []
        for (bad, what) in [(endless, "12-byte varint"), (overflow, "overflowing varint")] {
            let header: (UInt8) -> [UInt8] = { [$0, 0, 0, 0, 1] }
            cases.append(HostileCase(name: "\(what) as stream-id of HELLO", bytes: lengthPrefixed(header(1) + bad + [0]), status: 4))
            cases.append(HostileCase(name: "\(what) as frame-id of NOTIFY", bytes: hello + lengthPrefixed(header(3) + [1] + bad), status: 4))
            // NOTIFY "m" with one argument "a" whose value's varint is bad: INT64, then STRING length.
            for type: UInt8 in [0x04, 0x08] {
                let body = header(3) + [1, 1] + [1, 0x6D, 1, 1, 0x61, type] + bad
                cases.append(HostileCase(name: "\(what) in a type-\(type) argument", bytes: hello + lengthPrefixed(body), status: 4))
            }
            let helloBody = header(1) + [0, 0] + rawStr("max-frame-size") + [0x03] + bad
            cases.append(HostileCase(name: "\(what) as max-frame-size", bytes: lengthPrefixed(helloBody), status: 4))
        }
        // A string length larger than the frame.
        let longString = header3(1, 1) + [1, 0x6D, 1, 1, 0x61, 0x08] + varint(1 << 40) + [0x41]
        cases.append(HostileCase(name: "string length past the frame", bytes: hello + lengthPrefixed(longString), status: 4))
        return cases
    }

    /// Fragments and ids that do not match what is pending.
    static func wrongIDs() -> [HostileCase] {
        let first = notifyFrame(streamID: 7, frameID: 1, [SpopMessage(name: "m", args: [("a", .str("x"))])], flags: 0)
        let unset: (UInt64, UInt64, UInt32) -> [UInt8] = { spopFrame(type: 0, flags: $2, streamID: $0, frameID: $1, payload: [0x41]) }
        return [
            HostileCase(name: "UNSET with nothing pending", bytes: hello + unset(7, 1, SpopFlags.fin), status: 12),
            HostileCase(name: "UNSET for another frame-id", bytes: hello + first + unset(7, 2, SpopFlags.fin), status: 11),
            HostileCase(name: "UNSET for another stream-id", bytes: hello + first + unset(8, 1, 0), status: 11),
            HostileCase(name: "NOTIFY while fragments pending", bytes: hello + first + notify, status: 11),
            HostileCase(name: "second fragmented NOTIFY interlaced", bytes: hello + first + first, status: 11),
        ]
    }

    /// A NOTIFY in five fragments with an ABORT after each of 0...4 of them; a valid
    /// NOTIFY follows on the same connection and must still be ACKed (no disconnect).
    static func abortsAtEveryPoint() -> [(name: String, bytes: [UInt8])] {
        let payload = messagesPayload([SpopMessage(name: "m", args: [("a", .str(String(repeating: "x", count: 40)))])])
        let pieces = stride(from: 0, to: payload.count, by: payload.count / 5 + 1).map { Array(payload[$0..<min(payload.count, $0 + payload.count / 5 + 1)]) }
        let abort = spopFrame(type: 0, flags: SpopFlags.fin | SpopFlags.abort, streamID: 9, frameID: 4, payload: [])
        return (0...pieces.count).map { sent in
            var bytes = hello
            for (index, piece) in pieces.prefix(sent).enumerated() {
                bytes += spopFrame(type: index == 0 ? 3 : 0, flags: 0, streamID: 9, frameID: 4, payload: piece)
            }
            return ("ABORT after \(sent) of \(pieces.count) fragments", bytes + abort + notify)
        }
    }

    /// Random bytes with no HELLO, and random bytes right after a valid HELLO.
    static func garbage(count: Int, seed: UInt64) -> [HostileCase] {
        var random = SplitMix64(seed: seed)
        return (0..<count).map { index in
            let noise = random.bytes(Int(random.next() % 512) + 1)
            let afterHello = index % 2 == 1
            return HostileCase(name: "garbage #\(index) \(afterHello ? "after" : "before") HELLO",
                               bytes: (afterHello ? hello : []) + noise, status: statusForLength(noise))
        }
    }

    /// What the agent must answer to a stream whose first LEN is `bytes`' first 4 bytes.
    static func statusForLength(_ bytes: [UInt8]) -> UInt64? {
        guard bytes.count >= 4 else { return nil }
        let length = bytes.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        if length > 16380 { return 3 }
        if length < 7 { return 4 }
        return nil  // plausible length: the agent waits for the body
    }

    static func lengthPrefixed(_ body: [UInt8]) -> [UInt8] { be32(UInt32(body.count)) + body }

    /// TYPE NOTIFY, FLAGS FIN, and one-byte ids.
    static func header3(_ streamID: UInt8, _ frameID: UInt8) -> [UInt8] { [3, 0, 0, 0, 1, streamID, frameID] }
}

/// The agent's resident memory (VmRSS of /proc/PID/status), in kB.
func residentKilobytes(pid: Int32) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
    else { return nil }
    return Int(line.split(separator: " ").dropFirst().first ?? "")
}

/// Open file descriptors of a process (entries of /proc/PID/fd).
func openFileDescriptors(pid: Int32) -> Int? {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd"))?.count
}

/// True when the process runs with ASan's or TSan's runtime (`swift test --sanitize=...`).
func isSanitizerBuild(pid: Int32) -> Bool {
    guard let maps = try? String(contentsOfFile: "/proc/\(pid)/maps", encoding: .utf8) else { return false }
    if maps.contains("libclang_rt.asan") || maps.contains("libclang_rt.tsan") { return true }
    // Swift links the runtimes statically; their shadow memory reserves terabytes of
    // address space, which no plain agent does (about 1 GB).
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmSize:") }),
          let kilobytes = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    else { return false }
    return kilobytes > 1 << 30
}
