import NIOCore

extension AckWriter {
    /// The actions written since `mark` (a `mark` taken before a handler ran), for
    /// debug traces; empty if they cannot be decoded.
    public func actions(since mark: Int) -> [SpoaAction] {
        let start = frameStart + mark
        guard start >= actionsStart, let slice = buffer.getSlice(at: start, length: buffer.writerIndex - start) else { return [] }
        return (try? SpoaAction.decodeList(slice)) ?? []
    }
}
