/// Status codes of HAPROXY-DISCONNECT and AGENT-DISCONNECT frames.
public struct SpopStatus: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let normal = SpopStatus(rawValue: 0)
    public static let ioError = SpopStatus(rawValue: 1)
    public static let timeout = SpopStatus(rawValue: 2)
    public static let frameTooBig = SpopStatus(rawValue: 3)
    public static let invalidFrame = SpopStatus(rawValue: 4)
    public static let noVersion = SpopStatus(rawValue: 5)
    public static let noMaxFrameSize = SpopStatus(rawValue: 6)
    public static let noCapabilities = SpopStatus(rawValue: 7)
    public static let unsupportedVersion = SpopStatus(rawValue: 8)
    public static let badMaxFrameSize = SpopStatus(rawValue: 9)
    public static let fragmentationNotSupported = SpopStatus(rawValue: 10)
    public static let interlacedFrames = SpopStatus(rawValue: 11)
    public static let frameIDNotFound = SpopStatus(rawValue: 12)
    public static let resourceAllocation = SpopStatus(rawValue: 13)
    public static let unknown = SpopStatus(rawValue: 99)

    /// HAProxy's own text for the code.
    public var reason: String {
        switch rawValue {
        case 0: "normal"
        case 1: "I/O error"
        case 2: "a timeout occurred"
        case 3: "frame is too big"
        case 4: "invalid frame received"
        case 5: "version value not found"
        case 6: "max-frame-size value not found"
        case 7: "capabilities value not found"
        case 8: "unsupported version"
        case 9: "max-frame-size too big or too small"
        case 10: "fragmentation not supported"
        case 11: "invalid interlaced frames"
        case 12: "frame-id not found"
        case 13: "resource allocation error"
        default: "an unknown error occurred"
        }
    }

    public var description: String { "\(rawValue) (\(reason))" }
}

/// A protocol violation: the connection answers with AGENT-DISCONNECT(status) and closes.
public struct SpopProtocolError: Error, Hashable, Sendable, CustomStringConvertible {
    public var status: SpopStatus
    /// What exactly was wrong; sent as the DISCONNECT message (cut to 255 bytes) and logged.
    public var message: String

    public init(_ status: SpopStatus, _ message: String) {
        self.status = status
        self.message = message
    }

    public var description: String { "status \(status): \(message)" }
}
