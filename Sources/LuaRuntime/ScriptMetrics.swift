import CLuaSpoa

/// The metrics scripts declare with `spoa.metrics` (one process-wide registry in
/// C, shared by every worker and kept across reloads), for `/metrics`.
public enum ScriptMetrics {
    /// Prometheus text format 0.0.4: `luaspoa_script_<name>` families, or "".
    public static func render() -> String {
        var length = 0
        guard let text = luaspoa_metrics_render(&length) else { return "" }
        defer { luaspoa_metrics_free(text) }
        return String(decoding: UnsafeRawBufferPointer(start: text, count: length), as: UTF8.self)
    }
}
