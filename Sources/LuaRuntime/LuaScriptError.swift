/// A script failed to load (syntax error, missing file, error in its body) or a
/// handler failed. `message` carries Lua's "file:line: text"; `traceback` the
/// "stack traceback:" part when Lua produced one.
public struct LuaScriptError: Error, CustomStringConvertible, Sendable {
    public var scriptPath: String
    public var message: String
    public var traceback: String?

    public init(scriptPath: String, message: String, traceback: String? = nil) {
        self.scriptPath = scriptPath
        self.message = message
        self.traceback = traceback
    }

    /// Splits the text C returns ("message\nstack traceback:\n...").
    init(scriptPath: String, luaError text: String) {
        let (message, traceback) = LuaScriptError.split(text)
        self.init(scriptPath: scriptPath, message: message, traceback: traceback)
    }

    static func split(_ text: String) -> (message: String, traceback: String?) {
        let marker = Array("\nstack traceback:".utf8)
        let bytes = Array(text.utf8)
        guard bytes.count >= marker.count else { return (text, nil) }
        for start in 0...(bytes.count - marker.count) where bytes[start..<start + marker.count].elementsEqual(marker) {
            return (String(decoding: bytes[..<start], as: UTF8.self),
                    String(decoding: bytes[(start + 1)...], as: UTF8.self))
        }
        return (text, nil)
    }

    public var description: String {
        if let traceback { return "\(message)\n\(traceback)" }
        return message
    }
}
