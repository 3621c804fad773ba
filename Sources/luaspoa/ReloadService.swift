import LuaRuntime
import ServiceLifecycle
import UnixSignals

/// Reloads the script on every SIGHUP until the agent stops. Trapping starts in
/// `init`, before the PID file exists, so no early SIGHUP kills the agent or is lost.
struct ReloadService: Service {
    let reloader: LuaReloader
    let signals: UnixSignalsSequence

    init(reloader: LuaReloader) async {
        self.reloader = reloader
        self.signals = await UnixSignalsSequence(trapping: .sighup)
    }

    func run() async throws {
        for await _ in signals.cancelOnGracefulShutdown() {
            await reloader.reload()
        }
    }
}
