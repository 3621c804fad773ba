import Logging
import NIOConcurrencyHelpers
import NIOCore

/// The server's open connections: enforces the connection limit and drains them all
/// on shutdown. Shared by every event loop, hence the lock (taken once per
/// connection, never per frame).
final class ConnectionRegistry: Sendable {
    /// Fired into each connection's pipeline to ask it to say goodbye and close.
    struct DrainEvent: Sendable {}

    private struct State {
        var channels: [ObjectIdentifier: any Channel] = [:]
        var draining = false
    }

    private let state = NIOLockedValueBox(State())
    let maxConnections: Int

    init(maxConnections: Int) { self.maxConnections = maxConnections }

    var count: Int { state.withLockedValue { $0.channels.count } }

    /// The open connections (tests).
    var openChannels: [any Channel] { state.withLockedValue { Array($0.channels.values) } }

    /// Registers `channel`; false when the limit is reached or the server is draining.
    func admit(_ channel: any Channel) -> Bool {
        let admitted = state.withLockedValue { state in
            guard !state.draining, state.channels.count < maxConnections else { return false }
            state.channels[ObjectIdentifier(channel)] = channel
            return true
        }
        if admitted {
            channel.closeFuture.whenComplete { _ in
                self.state.withLockedValue { _ = $0.channels.removeValue(forKey: ObjectIdentifier(channel)) }
            }
        }
        return admitted
    }

    /// Asks every connection to finish and close, waits up to `timeout`, then cuts the rest.
    /// Returns how many connections had to be cut.
    func drain(timeout: TimeAmount) async -> Int {
        let channels = state.withLockedValue { state in
            state.draining = true
            return Array(state.channels.values)
        }
        for channel in channels {
            channel.pipeline.fireUserInboundEventTriggered(DrainEvent())
        }
        await Self.waitUntilClosed(channels, timeout: timeout)
        let remaining = state.withLockedValue { Array($0.channels.values) }
        for channel in remaining { channel.close(promise: nil) }
        return remaining.count
    }

    /// Returns once every channel has closed or `timeout` ran out, whichever comes first.
    /// The timeout is a task sleep, not an event-loop timer: a loop stuck in a handler
    /// must not hold the drain past its bound (nor would a promise on it ever complete).
    private static func waitUntilClosed(_ channels: [any Channel], timeout: TimeAmount) async {
        guard let loop = channels.first?.eventLoop else { return }
        let allClosed = EventLoopFuture.andAllComplete(channels.map(\.closeFuture), on: loop)
        let waiter = NIOLockedValueBox<CheckedContinuation<Void, Never>?>(nil)
        let resumeOnce: @Sendable () -> Void = { waiter.withLockedValue { $0.take() }?.resume() }
        await withCheckedContinuation { continuation in
            waiter.withLockedValue { $0 = continuation }
            let timer = Task {
                try? await Task.sleep(nanoseconds: UInt64(max(0, timeout.nanoseconds)))
                resumeOnce()
            }
            allClosed.whenComplete { _ in
                timer.cancel()
                resumeOnce()
            }
        }
    }
}
