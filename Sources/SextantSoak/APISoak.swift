import AsyncHTTPClient
import Foundation
import Histogram
import NIOCore
import NIOHTTP1
import SextantChroma
import SextantDatasets
import SextantJSON
import SextantPayload
import Synchronization

/// `sextant soak api`: many clients against the search API's ChromaDB routes
/// for minutes on end (the engine and the API each their own process, as in a
/// deployment), with the API's resident memory sampled throughout and every
/// response's status counted. The question: does the API's memory stay flat
/// under sustained concurrency, and does it ever answer 5xx.
public struct APISoak: Sendable {
    public struct Configuration: Sendable {
        /// The debian-minilm folder: records, vectors and queries.
        public var dataset: String
        public var workDirectory: String
        public var executable: String
        public var clients = 64
        public var seconds = 600.0
        public var sampleSeconds = 5.0
        public var records = 40_000
        /// Memory is compared from this point on (warm-up excluded).
        public var steadyFromSeconds = 120.0
        public var apiArguments: [String] = []
        public var keepData = false

        public init(dataset: String, workDirectory: String, executable: String) {
            self.dataset = dataset
            self.workDirectory = workDirectory
            self.executable = executable
        }
    }

    public struct Sample: Codable, Sendable {
        public var seconds: Double
        public var api_rss_bytes: Int
        public var api_rss_anonymous_bytes: Int
        public var engine_rss_bytes: Int
        public var requests: Int
        public var p50_ms: Double
        public var p99_ms: Double
    }

    public struct Report: Codable, Sendable {
        public var clients: Int
        public var seconds: Double
        public var records: Int
        public var requests: Int
        public var requests_per_second: Double
        public var status_2xx: Int
        public var status_429: Int
        public var status_4xx_other: Int
        public var status_5xx: Int
        public var transport_errors: Int
        public var p50_ms: Double
        public var p99_ms: Double
        public var rss_at_steady_start_bytes: Int
        public var rss_max_after_steady_start_bytes: Int
        public var rss_ratio_max: Double
        public var samples: [Sample]
        public var met: Bool
        public var csv: String
        public var plot: String?
    }

    let configuration: Configuration
    public init(configuration: Configuration) { self.configuration = configuration }

    public func run(progress: @escaping @Sendable (String) -> Void) async throws -> Report {
        let settings = configuration
        guard settings.clients >= 1, settings.clients <= 4_096 else { throw SoakError.invalid("clients must be in 1...4096") }
        guard settings.seconds > 0, settings.sampleSeconds > 0 else { throw SoakError.invalid("durations must be positive") }
        let work = settings.workDirectory
        let dataRoot = work + "/api-data"
        try? FileManager.default.removeItem(atPath: dataRoot)
        try FileManager.default.createDirectory(atPath: dataRoot, withIntermediateDirectories: true)
        defer { if !settings.keepData { try? FileManager.default.removeItem(atPath: dataRoot) } }

        let engine = try ChildProcess(label: "engine", executable: settings.executable,
                                      arguments: ["engine", "--data", dataRoot, "--listen", "127.0.0.1:0"],
                                      logPath: work + "/api-soak-engine.log", marker: "listening on [IPv4]")
        defer { engine.stop() }
        let api = try ChildProcess(label: "api", executable: settings.executable,
                                   arguments: ["api", "--data", dataRoot, "--engine", "127.0.0.1:\(engine.port)", "--listen", "127.0.0.1:0"]
                                       + settings.apiArguments,
                                   logPath: work + "/api-soak-api.log", marker: "search API listening on")
        defer { api.stop() }
        let base = "http://127.0.0.1:\(api.port)/api/v2/tenants/default_tenant/databases/default_database/collections"
        var httpConfiguration = HTTPClient.Configuration()
        httpConfiguration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: settings.clients)
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfiguration)
        do {
            let report = try await exercise(http: http, base: base, api: api, engine: engine, progress: progress)
            try? await http.shutdown()
            return report
        } catch {
            try? await http.shutdown()
            throw error
        }
    }

    private func exercise(http: HTTPClient, base: String, api: ChildProcess, engine: ChildProcess,
                          progress: @escaping @Sendable (String) -> Void) async throws -> Report {
        let settings = configuration
        let reader = try FvecsReader(path: settings.dataset + "/base.fvecs")
        let records = try DebianMiniLM.records(settings.dataset, limit: min(settings.records, reader.rows))
        let queryFile = try VectorFiles.readFvecs(settings.dataset + "/queries.fvecs", expectedDimensions: reader.dimensions)

        // Load through the API itself, as a chromadb client would.
        let (status, created) = try await Self.send(http, .POST, base, .object([
            "name": .string("soak"), "get_or_create": .bool(true), "metadata": .object(["hnsw:space": .string("cosine")]),
        ]))
        guard status == 200, let collectionID = created["id"]?.stringValue else {
            throw SoakError.engine("creating the collection through the API: HTTP \(status) \(JSON.serialize(created))")
        }
        let collection = base + "/" + collectionID
        let loadStart = ContinuousClock.now
        for start in stride(from: 0, to: records.count, by: 500) {
            let range = start..<min(start + 500, records.count)
            let vectors = try range.map { try reader.row($0) }
            let body: JSONValue = .object([
                "ids": .array(range.map { .string(records[$0].id) }),
                "embeddings": .array(vectors.map { .array($0.map { .float($0) }) }),
                "documents": .array(range.map { .string(records[$0].embeddedText) }),
                "metadatas": .array(range.map { row in
                    var metadata: Metadata = records[row].strings.mapValues { .string($0) }
                    metadata["installed_size"] = .int(Int64(records[row].installedSize))
                    return ChromaGrammar.metadataJSON(metadata)
                }),
            ])
            let (status, reply) = try await Self.send(http, .POST, collection + "/upsert", body)
            guard status == 200 else { throw SoakError.engine("upsert through the API: HTTP \(status) \(JSON.serialize(reply))") }
        }
        progress(String(format: "%d records loaded through the API in %.1f s", records.count, (ContinuousClock.now - loadStart).seconds))

        let requests = Self.requests(collection: collection, records: records,
                                     queries: (0..<queryFile.rows).map { Array(queryFile.row($0)) })
        let counters = StatusCounters()
        let stop = StopSignal()
        let started = ContinuousClock.now
        let clients = (0..<settings.clients).map { number in
            Task.detached {
                var index = number
                while !stop.isSet {
                    let request = requests[index % requests.count]
                    index += settings.clients
                    let start = ContinuousClock.now
                    do {
                        let status = try await Self.sendRaw(http, request)
                        counters.record(status: status, seconds: (ContinuousClock.now - start).seconds)
                    } catch {
                        if !stop.isSet { counters.recordTransportError() }
                    }
                }
            }
        }
        var samples: [Sample] = []
        var next = started + .seconds(settings.sampleSeconds)
        while ContinuousClock.now < started + .seconds(settings.seconds) {
            try await Task.sleep(until: next)
            next += .seconds(settings.sampleSeconds)
            let memory = ResidentMemory.of(pid: api.pid)
            let window = counters.takeWindow()
            let sample = Sample(seconds: (ContinuousClock.now - started).seconds, api_rss_bytes: memory.totalBytes,
                                api_rss_anonymous_bytes: memory.anonymousBytes, engine_rss_bytes: ResidentMemory.of(pid: engine.pid).totalBytes,
                                requests: window.count, p50_ms: window.p50Milliseconds, p99_ms: window.p99Milliseconds)
            samples.append(sample)
            if samples.count % max(1, Int(60 / settings.sampleSeconds)) == 0 {
                progress(String(format: "%.0f s: API RSS %.1f MiB, %d requests in the last %.0f s, p99 %.1f ms, 5xx so far %d",
                                sample.seconds, Double(sample.api_rss_bytes) / 1_048_576, sample.requests, settings.sampleSeconds,
                                sample.p99_ms, counters.totals().status5xx))
            }
            guard api.isRunning, engine.isRunning else { break }
        }
        stop.set()
        for client in clients { await client.value }
        let elapsed = (ContinuousClock.now - started).seconds
        guard api.isRunning, engine.isRunning else {
            throw SoakError.engine("a part exited during the run:\n\(api.log.suffix(3_000))\n\(engine.log.suffix(3_000))")
        }
        let totals = counters.totals()
        let steady = samples.filter { $0.seconds >= settings.steadyFromSeconds }
        let steadyStart = steady.first?.api_rss_bytes ?? samples.last?.api_rss_bytes ?? 0
        let steadyMax = steady.map(\.api_rss_bytes).max() ?? steadyStart
        let ratio = steadyStart > 0 ? Double(steadyMax) / Double(steadyStart) : 0
        let csv = settings.workDirectory + "/api-soak.csv"
        var lines = ["seconds,api_rss_bytes,api_rss_anonymous_bytes,engine_rss_bytes,requests,p50_ms,p99_ms"]
        for s in samples {
            lines.append(String(format: "%.1f,%d,%d,%d,%d,%.3f,%.3f", s.seconds, s.api_rss_bytes, s.api_rss_anonymous_bytes,
                                s.engine_rss_bytes, s.requests, s.p50_ms, s.p99_ms))
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: csv, atomically: true, encoding: .utf8)
        let plot = SoakPlot.run("""
            set terminal pngcairo size 1200,500 font ",10" noenhanced
            set output '\(settings.workDirectory)/api-soak.png'
            set datafile separator ','
            set grid
            set multiplot layout 1,2 title 'sextant soak api: \(settings.clients) clients'
            set xlabel 'seconds'
            set title 'resident memory (MiB)'
            plot '\(csv)' every ::1 using 1:($2/1048576) with lines title 'API RSS', '' every ::1 using 1:($3/1048576) with lines title 'API anonymous'
            set title 'latency (ms)'
            plot '\(csv)' every ::1 using 1:6 with lines title 'p50', '' every ::1 using 1:7 with lines title 'p99'
            unset multiplot
            """, png: settings.workDirectory + "/api-soak.png")
        return Report(
            clients: settings.clients, seconds: elapsed, records: records.count, requests: totals.count,
            requests_per_second: Double(totals.count) / elapsed, status_2xx: totals.status2xx, status_429: totals.status429,
            status_4xx_other: totals.status4xx, status_5xx: totals.status5xx, transport_errors: totals.transportErrors,
            p50_ms: totals.p50Milliseconds, p99_ms: totals.p99Milliseconds, rss_at_steady_start_bytes: steadyStart,
            rss_max_after_steady_start_bytes: steadyMax, rss_ratio_max: ratio, samples: samples,
            met: totals.status5xx == 0 && totals.transportErrors == 0 && ratio <= 1.1, csv: csv, plot: plot)
    }

    struct PreparedRequest: Sendable {
        var method: HTTPMethod
        var url: String
        var body: [UInt8]?
    }

    /// The mix a search page and its bots send: nearest neighbours (some
    /// filtered by a metadata field), gets by id and by filter, counts.
    static func requests(collection: String, records: [DatasetRecord], queries: [[Float]]) -> [PreparedRequest] {
        let sections = Array(Set(records.compactMap { $0.strings["section"] })).sorted()
        var requests: [PreparedRequest] = []
        for (index, query) in queries.enumerated() {
            let embedding: JSONValue = .array([.array(query.map { .float($0) })])
            switch index % 20 {
            case 0..<12:
                requests.append(PreparedRequest(method: .POST, url: collection + "/query", body: JSON.serializeBytes(.object([
                    "query_embeddings": embedding, "n_results": .int(10),
                    "include": .array([.string("documents"), .string("metadatas"), .string("distances")]),
                ]))))
            case 12..<15 where !sections.isEmpty:
                requests.append(PreparedRequest(method: .POST, url: collection + "/query", body: JSON.serializeBytes(.object([
                    "query_embeddings": embedding, "n_results": .int(10),
                    "where": .object(["section": .object(["$eq": .string(sections[index % sections.count])])]),
                ]))))
            case 15..<17:
                let ids = (0..<5).map { JSONValue.string(records[(index * 37 + $0 * 7_919) % records.count].id) }
                requests.append(PreparedRequest(method: .POST, url: collection + "/get", body: JSON.serializeBytes(.object([
                    "ids": .array(ids), "include": .array([.string("documents"), .string("metadatas")]),
                ]))))
            case 17..<19 where !sections.isEmpty:
                requests.append(PreparedRequest(method: .POST, url: collection + "/get", body: JSON.serializeBytes(.object([
                    "where": .object(["section": .object(["$eq": .string(sections[(index / 3) % sections.count])])]),
                    "limit": .int(20), "include": .array([.string("metadatas")]),
                ]))))
            default:
                requests.append(PreparedRequest(method: .GET, url: collection + "/count", body: nil))
            }
        }
        return requests
    }

    static func sendRaw(_ http: HTTPClient, _ prepared: PreparedRequest) async throws -> Int {
        var request = HTTPClientRequest(url: prepared.url)
        request.method = prepared.method
        if let body = prepared.body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(body)
        }
        let response = try await http.execute(request, timeout: .seconds(60))
        _ = try await response.body.collect(upTo: 64 << 20)
        return Int(response.status.code)
    }

    static func send(_ http: HTTPClient, _ method: HTTPMethod, _ url: String, _ body: JSONValue?) async throws -> (Int, JSONValue) {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(JSON.serializeBytes(body))
        }
        let response = try await http.execute(request, timeout: .seconds(300))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        return (Int(response.status.code), (try? JSON.parse(Array(bytes.readableBytesView))) ?? .null)
    }
}

/// Responses by status class, and latency per sampling window and overall.
final class StatusCounters: Sendable {
    struct Totals {
        var count = 0
        var status2xx = 0
        var status429 = 0
        var status4xx = 0
        var status5xx = 0
        var transportErrors = 0
        var p50Milliseconds = 0.0
        var p99Milliseconds = 0.0
    }

    private struct State {
        var totals = Totals()
        var all = Histogram<UInt64>(highestTrackableValue: 120_000_000)
        var window = Histogram<UInt64>(highestTrackableValue: 120_000_000)
    }

    private let state = Mutex(State())

    func record(status: Int, seconds: Double) {
        let micros = UInt64(max(1, min(seconds * 1e6, 120_000_000)))
        state.withLock { state in
            state.totals.count += 1
            switch status {
            case 200..<300: state.totals.status2xx += 1
            case 429: state.totals.status429 += 1
            case 400..<500: state.totals.status4xx += 1
            default: state.totals.status5xx += 1
            }
            _ = state.all.record(micros)
            _ = state.window.record(micros)
        }
    }

    func recordTransportError() { state.withLock { $0.totals.transportErrors += 1 } }

    func takeWindow() -> LatencyRecorder.Summary {
        let window = state.withLock { state -> Histogram<UInt64> in
            let taken = state.window
            state.window = Histogram<UInt64>(highestTrackableValue: 120_000_000)
            return taken
        }
        let count = Int(window.totalCount)
        return LatencyRecorder.Summary(count: count, errors: 0,
                                       p50Milliseconds: count == 0 ? 0 : Double(window.valueAtPercentile(50)) / 1_000,
                                       p99Milliseconds: count == 0 ? 0 : Double(window.valueAtPercentile(99)) / 1_000)
    }

    func totals() -> Totals {
        state.withLock { state in
            var totals = state.totals
            let count = Int(state.all.totalCount)
            totals.p50Milliseconds = count == 0 ? 0 : Double(state.all.valueAtPercentile(50)) / 1_000
            totals.p99Milliseconds = count == 0 ? 0 : Double(state.all.valueAtPercentile(99)) / 1_000
            return totals
        }
    }
}
