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
}

struct PIDFileError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
