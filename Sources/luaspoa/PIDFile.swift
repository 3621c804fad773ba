import Foundation

/// The agent's PID in a file, for `luaspoa reload --pid-file` and init systems.
struct PIDFile {
    let path: String

    init(creating path: String) throws {
        self.path = path
        try "\(ProcessInfo.processInfo.processIdentifier)\n".write(toFile: path, atomically: true, encoding: .utf8)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// The PID written in `path`, or an error saying what is wrong with the file.
    static func read(_ path: String) throws -> Int32 {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw PIDFileError(message: "cannot read the PID file \(path): \(error.localizedDescription)")
        }
        guard let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0 else {
            throw PIDFileError(message: "\(path) does not hold a process id")
        }
        return pid
    }

    /// Throws unless `pid` runs luaspoa: a stale PID file may name a recycled PID,
    /// and signalling that process would kill it (SIGHUP's default action).
    static func checkIsLuaspoa(_ pid: Int32, from path: String) throws {
        #if os(Linux)
        guard let name = programName(of: "\(pid)") else {
            throw PIDFileError(message: "no process \(pid) (from \(path)): is the agent running?")
        }
        let ours = programName(of: "self") ?? "luaspoa"
        guard name == ours || name == "luaspoa" else {
            throw PIDFileError(message: "process \(pid) from \(path) is '\(name)', not luaspoa; not signalling it (stale PID file?)")
        }
        #endif
    }

    /// The file name of the process's executable, or its comm when the executable
    /// link is not readable (another user's process); nil if there is no such process.
    private static func programName(of process: String) -> String? {
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(process)/exe") {
            // An upgraded binary still running shows as "/usr/bin/luaspoa (deleted)".
            let file = exe.hasSuffix(" (deleted)") ? String(exe.dropLast(" (deleted)".count)) : exe
            return (file as NSString).lastPathComponent
        }
        guard let comm = try? String(contentsOfFile: "/proc/\(process)/comm", encoding: .utf8) else { return nil }
        return comm.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

struct PIDFileError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
