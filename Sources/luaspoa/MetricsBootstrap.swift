import LuaRuntime
import Metrics
import Prometheus

/// Installs the Prometheus registry behind swift-metrics for the whole process.
/// Every metric made afterwards through CoreMetrics (engine, workers, reloads, and
/// other components' counters) is exported at `/metrics` without further wiring.
enum MetricsBootstrap {
    static func start() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // Handlers take microseconds, not the default's milliseconds to seconds.
        factory.durationHistogramBuckets["luaspoa_handler_duration_seconds"] = [
            .microseconds(10), .microseconds(25), .microseconds(50), .microseconds(100), .microseconds(250),
            .microseconds(500), .milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10),
            .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1),
        ]
        MetricsSystem.bootstrap(factory)
        return registry
    }

    /// Gauges read at scrape time: items, bytes and limits of each shared dict, and
    /// the Lua clients' connections.
    static func refreshGauges() {
        UpstreamConnections.refresh()
        for dict in SharedDictionary.all {
            let dimensions = [("dict", dict.name)]
            Gauge(label: "luaspoa_shared_dict_items", dimensions: dimensions).record(dict.count)
            Gauge(label: "luaspoa_shared_dict_capacity", dimensions: dimensions).record(dict.capacity)
            Gauge(label: "luaspoa_shared_dict_bytes", dimensions: dimensions).record(dict.bytes)
            Gauge(label: "luaspoa_shared_dict_max_bytes", dimensions: dimensions).record(dict.maxBytes)
        }
    }
}
