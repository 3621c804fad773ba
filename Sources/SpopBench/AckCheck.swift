import NIOCore
import SpopEngine

/// Why an ACK (or the connection) was not what HAProxy would accept.
public enum BenchError: String, Sendable, CaseIterable {
    case unexpectedIDs = "ACK with unknown stream-id/frame-id"
    case missingVariable = "ACK without the expected variable"
    case malformedAck = "malformed ACK payload"
    case unexpectedFrame = "unexpected frame type"
    case protocolError = "frame decoding error"
    case disconnected = "AGENT-DISCONNECT received"
    case connectionLost = "connection closed by the agent"
    case connectFailed = "connect or handshake failed"
}

/// Scans an ACK's LIST-OF-ACTIONS for one variable without copying or allocating.
struct AckCheck {
    let expected: ExpectedVariable?

    func check(_ payload: ByteBuffer) -> BenchError? {
        var payload = payload
        var found = expected == nil
        do {
            while payload.readableBytes > 0 {
                guard let (kind, count, scope) = payload.readMultipleIntegers(as: (UInt8, UInt8, UInt8).self) else {
                    return .malformedAck
                }
                let name = try payload.readSpopRawString("variable name")
                switch (kind, count) {
                case (1, 3): _ = try payload.readSpopValue()
                case (2, 2): break
                default: return .malformedAck
                }
                if !found, let expected, scope == expected.scope.rawValue {
                    found = name.readableBytesView.elementsEqual(expected.name)
                }
            }
        } catch {
            return .malformedAck
        }
        return found ? nil : .missingVariable
    }
}
