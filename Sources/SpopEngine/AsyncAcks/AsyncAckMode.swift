/// Where ACKs may go when `async` is negotiated (`--async-ack`).
public enum AsyncAckMode: String, Sendable, CaseIterable {
    /// On the NOTIFY's own connection; a sibling of the same engine-id only when the
    /// own connection cannot take them (not writable, closing, write failed).
    case own
    /// Round-robin over every connection of the engine-id, own one included: a
    /// distribution/testing mode that proves HAProxy accepts ACKs on any of them.
    case spread
}
