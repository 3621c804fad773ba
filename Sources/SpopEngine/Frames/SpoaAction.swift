import NIOCore

/// One action of an ACK: what `AsyncClosureWorker` handlers return and `AckWriter.append`
/// writes, and what tests, the benchmark client and `luaspoa send` read back.
public enum SpoaAction: Equatable, Sendable, CustomStringConvertible {
    case setVar(VarScope, String, SpopValue)
    case unsetVar(VarScope, String)

    public var description: String {
        switch self {
        case .setVar(let scope, let name, let value): "set-var(\(scope.name).\(name)) \(value)"
        case .unsetVar(let scope, let name): "unset-var(\(scope.name).\(name))"
        }
    }

    /// Decodes a LIST-OF-ACTIONS payload.
    public static func decodeList(_ payload: ByteBuffer) throws(SpopDecodingError) -> [SpoaAction] {
        var payload = payload
        var actions: [SpoaAction] = []
        while payload.readableBytes > 0 {
            guard let (kind, count, scopeByte) = payload.readMultipleIntegers(as: (UInt8, UInt8, UInt8).self) else {
                throw .truncated("action")
            }
            guard let scope = VarScope(rawValue: scopeByte) else { throw SpopDecodingError("unknown scope \(scopeByte)") }
            let name = String(buffer: try payload.readSpopRawString("variable name"))
            switch (kind, count) {
            case (1, 3): actions.append(.setVar(scope, name, try payload.readSpopValue()))
            case (2, 2): actions.append(.unsetVar(scope, name))
            default: throw SpopDecodingError("unknown action \(kind) with \(count) arguments")
            }
        }
        return actions
    }
}
