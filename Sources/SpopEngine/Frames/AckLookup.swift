import NIOCore

/// What an ACK being built currently says about one variable.
public enum QueuedAction: Equatable {
    case set(SpopValue)
    case unset
}

extension AckWriter {
    /// The latest action queued so far for `scope` + `name`, read back from the
    /// encoded bytes (so a rollback also takes it back), or nil.
    /// Byte values share the ACK's storage: copy them before the next append.
    public func latestAction(_ scope: VarScope, name: UnsafeRawBufferPointer) -> QueuedAction? {
        guard var actions = buffer.getSlice(at: actionsStart, length: buffer.writerIndex - actionsStart) else { return nil }
        var latest: QueuedAction?
        // The ACK was written by this AckWriter, so it always decodes; stop quietly if not.
        while actions.readableBytes > 0,
              let (kind, _, scopeByte) = actions.readMultipleIntegers(as: (UInt8, UInt8, UInt8).self),
              let actionName = try? actions.readSpopRawString("variable name") {
            let matches = scopeByte == scope.rawValue && actionName.readableBytesView.elementsEqual(name)
            if kind == 1 {
                guard let value = try? actions.readSpopValue() else { break }
                if matches { latest = .set(value) }
            } else if matches {
                latest = .unset
            }
        }
        return latest
    }
}
