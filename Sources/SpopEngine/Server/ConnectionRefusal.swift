import NIOCore

/// Answers a connection over the limit with AGENT-DISCONNECT 13 and closes it.
///
/// HAProxy 2.6 reads an AGENT-DISCONNECT sent in place of AGENT-HELLO and reports
/// its text; a bare close would only say "connection reset".
final class ConnectionRefusal: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let reason: String

    init(reason: String) { self.reason = reason }

    func channelActive(context: ChannelHandlerContext) {
        var buffer = context.channel.allocator.buffer(capacity: 64)
        Disconnect(status: .resourceAllocation, message: reason).write(to: &buffer)
        context.writeAndFlush(wrapOutboundOut(buffer)).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}
