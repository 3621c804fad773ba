import NIOCore
import ServiceLifecycle

extension Channel {
    /// Waits for this (listening) channel to close, closing it on graceful shutdown
    /// (SIGTERM/SIGINT through a ServiceGroup) or on cancellation (another service of
    /// the group failed): a service built on it stops either way.
    public func closedOnShutdown() async throws {
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await closeFuture.get()
            } onGracefulShutdown: {
                self.close(promise: nil)
            }
        } onCancel: {
            self.close(promise: nil)
        }
    }
}
