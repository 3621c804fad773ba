import CoreMetrics

/// One counter per limit, `luaspoa_limit_hits_total{limit="..."}`: an operator sees
/// which bound is being hit without reading logs.
enum LimitCounters {
    static let maxConnections = Counter(label: "luaspoa_limit_hits_total", dimensions: [("limit", "max_connections")])
    static let helloTimeout = Counter(label: "luaspoa_limit_hits_total", dimensions: [("limit", "hello_timeout")])
    static let idleTimeout = Counter(label: "luaspoa_limit_hits_total", dimensions: [("limit", "idle_timeout")])
    static let frameTimeout = Counter(label: "luaspoa_limit_hits_total", dimensions: [("limit", "frame_timeout")])
    static let fragmentMemory = Counter(label: "luaspoa_limit_hits_total", dimensions: [("limit", "max_fragment_memory")])
    static let pendingOutput = Counter(label: "luaspoa_limit_hits_total", dimensions: [("limit", "max_pending_output")])
    static let drainCut = Counter(label: "luaspoa_limit_hits_total", dimensions: [("limit", "drain_timeout")])
}
