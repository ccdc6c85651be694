import Foundation
import SextantSQLite
import HTTPTypes
import Hummingbird
import SextantClient
import SextantChroma
import SextantJSON
import Synchronization

/// Request counts and latency histograms per route, and engine call latencies,
/// rendered as Prometheus text at /metrics. Fixed buckets: cheap to record,
/// bounded memory (one series per route × status class, routes are a fixed set).
public final class MetricsRegistry: Sendable {
    static let bucketsSeconds: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10]

    struct Series {
        var count: UInt64 = 0
        var sum: Double = 0
        var buckets = [UInt64](repeating: 0, count: MetricsRegistry.bucketsSeconds.count)

        mutating func observe(_ seconds: Double) {
            count += 1
            sum += seconds
            for (index, bound) in MetricsRegistry.bucketsSeconds.enumerated() where seconds <= bound { buckets[index] += 1 }
        }
    }

    private let requests = Mutex<[String: Series]>([:])  // key: route|method|status
    private let engine = Mutex<[String: Series]>([:])    // key: engine method
    /// Distinct series kept; beyond it new labels fold into "other" (unbounded labels are a memory leak).
    static let maximumSeries = 512

    public init() {}

    func observeRequest(route: String, method: String, status: Int, seconds: Double) {
        let key = "\(route)|\(method)|\(status)"
        requests.withLock { table in
            let slot = table[key] != nil || table.count < Self.maximumSeries ? key : "other|\(method)|\(status)"
            table[slot, default: Series()].observe(seconds)
        }
    }

    public func observeEngine(_ method: String, seconds: Double) {
        engine.withLock { table in table[method, default: Series()].observe(seconds) }
    }

    /// Times an engine call.
    public func timeEngine<T>(_ method: String, _ body: () async throws -> T) async rethrows -> T {
        let start = ContinuousClock.now
        defer {
            let elapsed = ContinuousClock.now - start
            observeEngine(method, seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
        }
        return try await body()
    }

    public func render() -> String {
        var out = ""
        out += "# HELP sextant_http_requests_total HTTP requests by route, method and status.\n"
        out += "# TYPE sextant_http_requests_total counter\n"
        let requestTable = requests.withLock { $0 }
        for (key, series) in requestTable.sorted(by: { $0.key < $1.key }) {
            let parts = key.split(separator: "|", omittingEmptySubsequences: false)
            out += "sextant_http_requests_total{route=\"\(escape(parts[0]))\",method=\"\(parts[1])\",status=\"\(parts[2])\"} \(series.count)\n"
        }
        out += "# HELP sextant_http_request_duration_seconds HTTP request latency by route.\n"
        out += "# TYPE sextant_http_request_duration_seconds histogram\n"
        var byRoute: [String: Series] = [:]
        for (key, series) in requestTable {
            let route = String(key.split(separator: "|", omittingEmptySubsequences: false)[0])
            var merged = byRoute[route, default: Series()]
            merged.count += series.count
            merged.sum += series.sum
            for index in merged.buckets.indices { merged.buckets[index] += series.buckets[index] }
            byRoute[route] = merged
        }
        for (route, series) in byRoute.sorted(by: { $0.key < $1.key }) {
            out += histogram("sextant_http_request_duration_seconds", label: "route=\"\(escape(Substring(route)))\"", series)
        }
        out += "# HELP sextant_engine_call_duration_seconds Latency of calls from the API to the engine.\n"
        out += "# TYPE sextant_engine_call_duration_seconds histogram\n"
        for (method, series) in engine.withLock({ $0 }).sorted(by: { $0.key < $1.key }) {
            out += histogram("sextant_engine_call_duration_seconds", label: "method=\"\(method)\"", series)
        }
        return out
    }

    private func histogram(_ name: String, label: String, _ series: Series) -> String {
        var out = ""
        for (index, bound) in Self.bucketsSeconds.enumerated() {
            out += "\(name)_bucket{\(label),le=\"\(bound)\"} \(series.buckets[index])\n"
        }
        out += "\(name)_bucket{\(label),le=\"+Inf\"} \(series.count)\n"
        out += "\(name)_sum{\(label)} \(series.sum)\n"
        out += "\(name)_count{\(label)} \(series.count)\n"
        return out
    }

    private func escape(_ text: Substring) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
    }
}

/// Records every request, and turns errors into JSON responses in the shape of
/// the route family (native or ChromaDB). A client's mistake is never a 500.
struct ObservingMiddleware: RouterMiddleware {
    typealias Context = APIContext
    let metrics: MetricsRegistry

    func handle(_ request: Request, context: APIContext, next: (Request, APIContext) async throws -> Response) async throws
        -> Response
    {
        let start = ContinuousClock.now
        let chroma = request.uri.path.hasPrefix("/api/")
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as APIError {
            response = Reply.error(error, chroma: chroma)
        } catch let error as SextantError {
            response = Reply.error(APIError(error), chroma: chroma)
        } catch let error as GrammarError {
            response = Reply.error(APIError.badRequest(error.message), chroma: chroma)
        } catch let error as HTTPError where error.status == .notFound {
            if let allowed = KnownRoutes.methods(for: request.uri.path), !allowed.contains(request.method) {
                var refusal = Reply.error(APIError(.methodNotAllowed, "method_not_allowed",
                                                   "\(request.method) is not allowed on \(request.uri.path)"), chroma: chroma)
                refusal.headers[.allow] = allowed.map(\.rawValue).joined(separator: ", ")
                response = refusal
            } else {
                response = Reply.error(APIError(.notFound, "not_found", "no route for \(request.method) \(request.uri.path)"), chroma: chroma)
            }
        } catch let error as HTTPError {
            let code = error.status == .notFound ? "not_found" : "http_error"
            let message = error.body ?? (error.status == .notFound ? "no route for \(request.method) \(request.uri.path)" : "\(error.status)")
            response = Reply.error(APIError(error.status, code, message), chroma: chroma)
        } catch {
            context.logger.error("unhandled error on \(request.method) \(request.uri.path): \(error)")
            response = Reply.error(APIError(.internalServerError, "internal", "internal error"), chroma: chroma)
        }
        let elapsed = ContinuousClock.now - start
        metrics.observeRequest(
            route: context.endpointPath ?? "unmatched", method: request.method.rawValue, status: Int(response.status.code),
            seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
        return response
    }
}

/// The native routes' paths and methods, so that a known path with the wrong
/// method gets 405 and an Allow header rather than 404.
enum KnownRoutes {
    static let table: [(pattern: [String], methods: [HTTPRequest.Method])] = [
        ([""], [.get]), (["healthz"], [.get]), (["readyz"], [.get]), (["metrics"], [.get]),
        (["v1", "collections"], [.get, .post]), (["v1", "collections", "*", "search"], [.post]),
        (["v1", "feedback"], [.get, .post]), (["v1", "collections", "*", "chat"], [.post]),
        (["v1", "collections", "*", "facets"], [.get]), (["v1", "ingest", "runs"], [.get]),
        (["v1", "bots"], [.get, .post]), (["v1", "bots", "*"], [.get, .patch, .delete]), (["v1", "bots", "*", "start"], [.post]),
        (["v1", "bots", "*", "stop"], [.post]), (["v1", "bots", "*", "conversations"], [.get]),
    ]

    static func methods(for path: String) -> [HTTPRequest.Method]? {
        let segments = path == "/" ? [""] : path.split(separator: "/").map(String.init)
        for (pattern, methods) in table where pattern.count == segments.count {
            if zip(pattern, segments).allSatisfy({ $0.0 == "*" || $0.0 == $0.1 }) { return methods }
        }
        return nil
    }
}

/// The ingestion worker's counters, read from its ledger when Prometheus
/// scrapes: the worker runs as its own process (often a cron job), so its
/// ledger, not its memory, is where they live between runs.
enum IngestMetrics {
    static func render(ledgerPath: String?) -> String {
        guard let ledgerPath, FileManager.default.fileExists(atPath: ledgerPath),
              let ledger = try? Database(path: ledgerPath),
              let totals = try? ledger.query("""
                  SELECT COALESCE(SUM(rows_ingested), 0), COALESCE(SUM(rows_quarantined), 0), COALESCE(SUM(files), 0),
                         COALESCE(MAX(finished_at), 0) FROM runs
                  """).first,
              let failed = try? ledger.query("SELECT COUNT(*) FROM files WHERE status = 'failed'").first
        else { return "" }
        func number(_ value: SQLValue) -> String { value.integer.map(String.init) ?? value.real.map { String(format: "%.3f", $0) } ?? "0" }
        return """
            # HELP sextant_ingest_rows_ingested_total Rows the ingestion worker has written, over every run.
            # TYPE sextant_ingest_rows_ingested_total counter
            sextant_ingest_rows_ingested_total \(number(totals[0]))
            # HELP sextant_ingest_rows_quarantined_total Rows the ingestion worker has quarantined.
            # TYPE sextant_ingest_rows_quarantined_total counter
            sextant_ingest_rows_quarantined_total \(number(totals[1]))
            # HELP sextant_ingest_files_total Files the ingestion worker has ingested.
            # TYPE sextant_ingest_files_total counter
            sextant_ingest_files_total \(number(totals[2]))
            # HELP sextant_ingest_files_failed Files the ingestion worker could not ingest (in the ledger as failed).
            # TYPE sextant_ingest_files_failed gauge
            sextant_ingest_files_failed \(number(failed[0]))
            # HELP sextant_ingest_last_run_timestamp_seconds When the worker's last run finished (seconds since 1970).
            # TYPE sextant_ingest_last_run_timestamp_seconds gauge
            sextant_ingest_last_run_timestamp_seconds \(number(totals[3]))

            """
    }
}

/// Each engine's position in every collection's log, from the client's
/// endpoints (the primary and its read replicas): applied LSN, and a replica's
/// lag behind the primary's shipped log.
enum ReplicationMetrics {
    static func render(_ endpoints: [(endpoint: String, isPrimary: Bool, stats: [CollectionStatistics]?)]) -> String {
        var up = "# HELP sextant_engine_up Whether the engine answered the API's stats call (1) or not (0).\n# TYPE sextant_engine_up gauge\n"
        var applied = "# HELP sextant_collection_applied_lsn The last log entry the engine applied in the collection (the primary's LSN on a replica).\n# TYPE sextant_collection_applied_lsn gauge\n"
        var lag = "# HELP sextant_replica_lag_seconds Seconds since a read replica last found nothing newer in its primary's shipped log.\n# TYPE sextant_replica_lag_seconds gauge\n"
        for entry in endpoints {
            let role = entry.isPrimary ? "primary" : "replica"
            let engine = "engine=\"\(label(entry.endpoint))\",role=\"\(role)\""
            up += "sextant_engine_up{\(engine)} \(entry.stats == nil ? 0 : 1)\n"
            for collection in entry.stats ?? [] {
                let labels = engine + ",collection=\"\(label(collection.name))\""
                applied += "sextant_collection_applied_lsn{\(labels)} \(collection.lastLSN)\n"
                if collection.isReplica, let milliseconds = collection.replicaLagMilliseconds {
                    lag += "sextant_replica_lag_seconds{\(labels)} \(String(format: "%.3f", Double(milliseconds) / 1_000))\n"
                }
            }
        }
        return up + applied + lag
    }

    /// Prometheus label values escape the backslash, the double quote and the line feed.
    static func label(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }
}
