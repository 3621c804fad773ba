import NIOCore

extension AckWriter {
    /// The actions written since `mark` (a `mark` taken before a handler ran), for
    /// debug traces; empty if they cannot be decoded.
    public func actions(since mark: Int) -> [SpoaAction] {
        guard mark >= actionsStart, let slice = buffer.getSlice(at: mark, length: buffer.writerIndex - mark) else { return [] }
        return (try? SpoaAction.decodeList(slice)) ?? []
    }
}
