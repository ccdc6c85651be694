import Foundation
import Histogram
import SextantClient
import SextantConcurrency
import SextantDatasets
import SextantPayload
import SextantSupport
import Synchronization

/// What the load test talks to: the engine over its binary protocol, or another
/// vector database through its own API (for side-by-side runs).
public protocol LoadTarget: Sendable {
    var name: String { get }
    func prepare(collection: String, dimension: Int) async throws
    /// Encodes the query requests once, so the harness's own CPU per query is
    /// small and the same for every target (it shares the machine with them).
    func prepareQueries(_ queries: [[Float]], k: Int) throws
    func upsert(_ batch: LoadBatch) async throws
    func query(index: Int) async throws -> [String]
    func waitUntilIndexed(records: Int) async throws
    func close() async
    /// The prepared query requests as URL and bodies, for an external HTTP load
    /// generator such as wrk; nil when the target does not speak HTTP.
    func exportedRequests() -> (url: String, bodies: [[UInt8]])?
    /// The executor query client `number` should run on (an event loop of the
    /// target's connections), so that the harness spends as little CPU per query
    /// as the target's client allows; nil: the global executor.
    func queryExecutor(forClient number: Int) -> (any TaskExecutor)?
    /// Acknowledged records the target has not indexed yet (queries scan them
    /// exactly); nil when the target does not say.
    func unindexedRecords() async -> Int?
}

extension LoadTarget {
    public func exportedRequests() -> (url: String, bodies: [[UInt8]])? { nil }
    public func queryExecutor(forClient number: Int) -> (any TaskExecutor)? { nil }
    public func unindexedRecords() async -> Int? { nil }
}

public struct LoadBatch: Sendable {
    public var ids: [String]
    public var vectors: [[Float]]
    /// Nil for a scaled set without source records.
    public var documents: [String]?
    public var metadatas: [Metadata]
}

/// `sextant load`: ingest the debian-minilm records while N clients query with
/// the public queries; latency percentiles idle and during ingest, ingest rate,
/// and recall@10 of the answers.
public struct LoadTest: Sendable {
    public enum Rate: Sendable, Equatable {
        case max
        /// Records per (compressed) day, delivered as the seed's four equal bursts.
        case perDay(Int)

        public init(parsing text: String) throws {
            if text == "max" {
                self = .max
                return
            }
            let number = text.hasSuffix("/day") ? String(text.dropLast(4)) : text
            guard let value = Int(number), value > 0 else {
                throw DatasetError.malformed("--rate", "expected 'max' or RECORDS/day, got '\(text)'")
            }
            self = .perDay(value)
        }
    }

    /// What the measured phase writes over the loaded records. An engine may skip
    /// re-indexing a record whose vector did not change (Sextant does), so only
    /// `changed` measures queries against indexing work.
    public enum Replay: String, Sendable, Codable {
        /// Every vector scaled by 1.01 in its largest component: a different
        /// vector for the index, the same neighbours for recall.
        case changed
        case identical
    }

    public struct Configuration: Sendable {
        public var dataset: String
        public var replay = Replay.changed
        public var collection = "load"
        public var clients = 8
        public var batchRecords = 1_000
        public var writers = 2
        public var rate = Rate.max
        public var idleSeconds = 10.0
        public var daySeconds = 60.0
        public var k = 10
        public var limit = Int.max

        public init(dataset: String) { self.dataset = dataset }
    }

    public struct Phase: Codable, Sendable {
        public var seconds: Double
        public var queries: Int
        public var qps: Double
        public var p50_ms: Double
        public var p95_ms: Double
        public var p99_ms: Double
        public var max_ms: Double
        public var recall_at_10: Double
        public var errors: Int
        public var ingested_records: Int
        public var ingest_records_per_second: Double
        /// The target's unindexed records, sampled every 100 ms while the ingest
        /// runs: what each query scanned besides the graph.
        public var unindexed_max: Int?
        public var unindexed_mean: Double?
    }

    public struct Report: Codable, Sendable {
        public var target: String
        public var clients: Int
        public var records: Int
        public var batch_records: Int
        public var rate: String
        public var replay: Replay
        public var initial_load_seconds: Double
        public var initial_load_records_per_second: Double
        /// Durable acknowledgements only (before the index caught up).
        public var initial_load_acknowledged_records_per_second: Double
        public var idle: Phase
        public var during_ingest: Phase
        public var p99_ratio_ingest_over_idle: Double
    }

    let configuration: Configuration
    public init(configuration: Configuration) { self.configuration = configuration }

    /// Loads the records, waits until they are indexed, and writes the prepared
    /// query requests to `requestsPath` (first line the URL, then one JSON body
    /// per line) for wrk (tools/compare/wrk-query.lua).
    public func prepareOnly(target: any LoadTarget, requestsPath: String,
                            progress: @escaping @Sendable (String) -> Void) async throws {
        let data = try LoadData(directory: configuration.dataset, limit: configuration.limit)
        try await target.prepare(collection: configuration.collection, dimension: data.dimension)
        try target.prepareQueries(data.queries, k: configuration.k)
        try await ingest(target, data, batches: data.batchRanges(configuration.batchRecords), writers: max(4, configuration.writers))
        try await target.waitUntilIndexed(records: data.count)
        guard let (url, bodies) = target.exportedRequests() else {
            throw SextantError(.invalidArgument, "--prepare-only needs an HTTP target (--chroma)")
        }
        var text = Array((url + "\n").utf8)
        for body in bodies { text += body; text.append(UInt8(ascii: "\n")) }
        guard FileManager.default.createFile(atPath: requestsPath, contents: Data(text)) else {
            throw SextantError(.invalidArgument, "cannot write \(requestsPath)")
        }
        progress("loaded \(data.count) records; \(bodies.count) query requests in \(requestsPath)")
    }

    public func run(target: any LoadTarget, progress: @escaping @Sendable (String) -> Void) async throws -> Report {
        let data = try LoadData(directory: configuration.dataset, limit: configuration.limit)
        progress("loaded \(data.count) records and \(data.queries.count) queries")
        try await target.prepare(collection: configuration.collection, dimension: data.dimension)
        try target.prepareQueries(data.queries, k: configuration.k)
        let initialStart = ContinuousClock.now
        try await ingest(target, data, batches: data.batchRanges(configuration.batchRecords), writers: max(4, configuration.writers))
        let acknowledgedSeconds = (ContinuousClock.now - initialStart).seconds
        try await target.waitUntilIndexed(records: data.count)
        let initialSeconds = (ContinuousClock.now - initialStart).seconds
        progress(String(format: "initial load: %d records in %.1f s (indexed)", data.count, initialSeconds))

        let idle = try await measure(target, data, seconds: configuration.idleSeconds) { _ in 0 }
        progress(String(format: "idle: %.0f qps, p50 %.3f ms, p99 %.3f ms, recall@10 %.4f", idle.qps, idle.p50_ms, idle.p99_ms,
                        idle.recall_at_10))
        let busy = try await measure(target, data, seconds: nil) { stop in
            try await self.replay(target, data, until: stop)
        }
        progress(String(format: "during ingest: %.0f qps, p50 %.3f ms, p99 %.3f ms, recall@10 %.4f; ingest %.0f records/s",
                        busy.qps, busy.p50_ms, busy.p99_ms, busy.recall_at_10, busy.ingest_records_per_second)
                 + (busy.unindexed_max.map { "; unindexed at most \($0), mean \(Int(busy.unindexed_mean ?? 0))" } ?? ""))
        let rateText: String
        switch configuration.rate {
        case .max: rateText = "max"
        case .perDay(let records): rateText = "\(records)/day over \(Int(configuration.daySeconds)) s"
        }
        return Report(
            target: target.name, clients: configuration.clients, records: data.count, batch_records: configuration.batchRecords,
            rate: rateText, replay: configuration.replay, initial_load_seconds: initialSeconds,
            initial_load_records_per_second: Double(data.count) / initialSeconds,
            initial_load_acknowledged_records_per_second: Double(data.count) / acknowledgedSeconds, idle: idle, during_ingest: busy,
            p99_ratio_ingest_over_idle: busy.p99_ms / max(idle.p99_ms, 1e-9))
    }

    /// One mode's phase in one round of `runModes`.
    public struct ModePhase: Codable, Sendable {
        public var mode: String
        public var round: Int
        /// "idle", or "ingest" while the records are re-ingested at the configured rate.
        public var load: String
        public var phase: Phase
    }

    public struct ModesReport: Codable, Sendable {
        public var clients: Int
        public var records: Int
        public var phase_seconds: Double
        public var phases: [ModePhase]
        /// Per mode, the median over rounds of its p99 over the first mode's p99 in the same round (idle).
        public var median_p99_ratio_over_first: [String: Double]
        /// The same while the records are re-ingested (with `duringIngest`).
        public var median_p99_ratio_over_first_during_ingest: [String: Double]?
    }

    /// Loads the records into a collection with a text index, then measures
    /// the modes' query latency idle, one after another, `rounds` times over
    /// (interleaved, so a noisy neighbour hits every mode alike). Queries are
    /// the public queries: their vectors and their text.
    public func runModes(target: SextantTarget, modes: [SearchMode], rounds: Int, duringIngest: Bool = false,
                         progress: @escaping @Sendable (String) -> Void) async throws -> ModesReport {
        precondition(!modes.isEmpty && rounds > 0, "at least one mode and one round")
        let data = try LoadData(directory: configuration.dataset, limit: configuration.limit)
        let texts = try String(contentsOfFile: configuration.dataset + "/queries.txt", encoding: .utf8)
            .split(separator: "\n", omittingEmptySubsequences: false).prefix(data.queries.count).map(String.init)
        guard texts.count == data.queries.count else { throw SextantError(.invalidArgument, "queries.txt has fewer lines than queries.fvecs") }
        target.textIndex = true
        try await target.prepare(collection: configuration.collection, dimension: data.dimension)
        try target.prepareQueries(data.queries, k: configuration.k)
        try await ingest(target, data, batches: data.batchRanges(configuration.batchRecords), writers: max(4, configuration.writers))
        try await target.waitUntilIndexed(records: data.count)
        progress("loaded \(data.count) records with a text index")
        var phases: [ModePhase] = []
        for round in 1...rounds {
            for mode in modes {
                target.use(mode: mode, texts: texts)
                let phase = try await measure(target, data, seconds: configuration.idleSeconds) { _ in 0 }
                progress(String(format: "round %d %@ idle: %.0f qps, p50 %.3f ms, p99 %.3f ms, recall@10 %.4f", round, mode.rawValue,
                                phase.qps, phase.p50_ms, phase.p99_ms, phase.recall_at_10))
                phases.append(ModePhase(mode: mode.rawValue, round: round, load: "idle", phase: phase))
                guard duringIngest else { continue }
                let busy = try await measure(target, data, seconds: nil) { stop in try await self.replay(target, data, until: stop) }
                progress(String(format: "round %d %@ during ingest: %.0f qps, p50 %.3f ms, p99 %.3f ms; ingest %.0f records/s",
                                round, mode.rawValue, busy.qps, busy.p50_ms, busy.p99_ms, busy.ingest_records_per_second))
                phases.append(ModePhase(mode: mode.rawValue, round: round, load: "ingest", phase: busy))
            }
        }
        func ratios(_ load: String) -> [String: Double] {
            var ratios: [String: Double] = [:]
            for mode in modes.dropFirst() {
                let perRound = (1...rounds).compactMap { round -> Double? in
                    guard let base = phases.first(where: { $0.round == round && $0.load == load && $0.mode == modes[0].rawValue }),
                          let this = phases.first(where: { $0.round == round && $0.load == load && $0.mode == mode.rawValue })
                    else { return nil }
                    return this.phase.p99_ms / max(base.phase.p99_ms, 1e-9)
                }.sorted()
                if !perRound.isEmpty { ratios[mode.rawValue] = perRound[perRound.count / 2] }
            }
            return ratios
        }
        return ModesReport(clients: configuration.clients, records: data.count, phase_seconds: configuration.idleSeconds,
                           phases: phases, median_p99_ratio_over_first: ratios("idle"),
                           median_p99_ratio_over_first_during_ingest: duringIngest ? ratios("ingest") : nil)
    }

    /// Runs the query clients for `seconds`, or for as long as `work` runs.
    private func measure(_ target: any LoadTarget, _ data: LoadData, seconds: Double?,
                         work: @escaping @Sendable (StopFlag) async throws -> Int) async throws -> Phase {
        let stop = StopFlag()
        let next = AtomicCounter()
        let start = ContinuousClock.now
        let (samples, ingested, elapsed, unindexed) = try await withThrowingTaskGroup(of: ClientSample.self) { group in
            for number in 0..<configuration.clients {
                group.addTask(executorPreference: target.queryExecutor(forClient: number)) {
                    await self.queryLoop(target, data, next: next, stop: stop)
                }
            }
            var ingested = 0
            var unindexed: [Int] = []
            if let seconds {
                try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
            } else {
                let sampler = Task { () -> [Int] in
                    var values: [Int] = []
                    while !stop.isSet, !Task.isCancelled {
                        guard let value = await target.unindexedRecords() else { break }
                        values.append(value)
                        try? await Task.sleep(for: .milliseconds(100))
                    }
                    return values
                }
                do { ingested = try await work(stop) } catch { sampler.cancel(); throw error }
                sampler.cancel()
                unindexed = await sampler.value
            }
            let elapsed = (ContinuousClock.now - start).seconds
            stop.set()
            var samples: [ClientSample] = []
            for try await sample in group { samples.append(sample) }
            return (samples, ingested, elapsed, unindexed)
        }
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000)
        var hits = 0.0
        var judged = 0
        var errors = 0
        var queries = 0
        for sample in samples {
            histogram.add(sample.histogram)
            hits += sample.recallSum
            judged += sample.judged
            errors += sample.errors
            queries += sample.queries
        }
        func milliseconds(_ percentile: Double) -> Double { Double(histogram.valueAtPercentile(percentile)) / 1000 }
        return Phase(
            seconds: elapsed, queries: queries, qps: Double(queries) / elapsed, p50_ms: milliseconds(50), p95_ms: milliseconds(95),
            p99_ms: milliseconds(99), max_ms: Double(histogram.max) / 1000, recall_at_10: judged > 0 ? hits / Double(judged) : 0,
            errors: errors, ingested_records: ingested, ingest_records_per_second: ingested > 0 ? Double(ingested) / elapsed : 0,
            unindexed_max: unindexed.max(), unindexed_mean: unindexed.isEmpty ? nil : Double(unindexed.reduce(0, +)) / Double(unindexed.count))
    }

    struct ClientSample: Sendable {
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000)
        var queries = 0
        var errors = 0
        var recallSum = 0.0
        var judged = 0
    }

    private func queryLoop(_ target: any LoadTarget, _ data: LoadData, next: AtomicCounter, stop: StopFlag) async -> ClientSample {
        var sample = ClientSample()
        while !stop.isSet {
            let index = next.next() % data.queries.count
            let start = ContinuousClock.now
            do {
                let ids = try await target.query(index: index)
                let micros = (ContinuousClock.now - start).seconds * 1e6
                _ = sample.histogram.record(UInt64(max(1, micros)))
                sample.queries += 1
                let acceptable = data.acceptable[index]
                sample.recallSum += Double(ids.prefix(10).filter { acceptable.contains($0) }.count) / 10
                sample.judged += 1
            } catch {
                sample.errors += 1
            }
        }
        return sample
    }

    /// The load generator's writers stand in for an ingestion worker, a separate,
    /// lower-priority process in a deployment: they run on niced threads so that
    /// this process's query clients are not delayed behind batch encoding.
    static let writerExecutor = NicedExecutor(threads: 1, niceness: 10, name: "load-writer")

    private func ingest(_ target: any LoadTarget, _ data: LoadData, batches: [Range<Int>], nudged: Bool = false, writers: Int)
        async throws
    {
        let next = AtomicCounter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<max(1, writers) {
                group.addTask(executorPreference: Self.writerExecutor) {
                    while true {
                        let index = next.next()
                        guard index < batches.count else { return }
                        try await target.upsert(try data.batch(batches[index], nudged: nudged))
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// Re-ingests the records (upserts, so recall stays comparable) at the configured rate.
    private func replay(_ target: any LoadTarget, _ data: LoadData, until stop: StopFlag) async throws -> Int {
        let batches = data.batchRanges(configuration.batchRecords)
        let nudged = configuration.replay == .changed
        switch configuration.rate {
        case .max:
            try await ingest(target, data, batches: batches, nudged: nudged, writers: configuration.writers)
            return data.count
        case .perDay(let recordsPerDay):
            // The seed's schedule: four equal bursts a day (00:00, 06:00, 12:00, 18:00), compressed in time.
            let burst = max(1, recordsPerDay / 4)
            let start = ContinuousClock.now
            var written = 0
            for number in 0..<4 {
                let due = Double(number) * configuration.daySeconds / 4
                let waited = due - (ContinuousClock.now - start).seconds
                if waited > 0 { try await Task.sleep(for: .milliseconds(Int(waited * 1000))) }
                var burstBatches: [Range<Int>] = []
                var taken = 0
                while taken < burst {
                    let batch = batches[(written / configuration.batchRecords + burstBatches.count) % batches.count]
                    burstBatches.append(batch)
                    taken += batch.count
                }
                try await ingest(target, data, batches: burstBatches, nudged: nudged, writers: configuration.writers)
                written += taken
            }
            let remaining = configuration.daySeconds - (ContinuousClock.now - start).seconds
            if remaining > 0 { try await Task.sleep(for: .milliseconds(Int(remaining * 1000))) }
            return written
        }
    }
}

/// The dataset in the shape the load test needs, with the set of acceptable
/// answers per query precomputed from the ground truth (ties included).
///
/// Vectors stay in their file and are read a batch at a time, so a scaled set
/// of a million records (`../shared/data/scaled/make_scaled.py`, vectors and
/// ground truth only) loads as well as the 40,000 real ones: records without
/// a source record get the id `s<row>`, no document and their row as metadata.
struct LoadData: Sendable {
    let count: Int
    let vectors: FvecsReader
    let records: [DatasetRecord]?
    let queries: [[Float]]
    let acceptable: [Set<String>]
    var dimension: Int { vectors.dimensions }
    var ids: LazyMapSequence<Range<Int>, String> { (0..<count).lazy.map(id) }

    init(directory: String, limit: Int) throws {
        vectors = try FvecsReader(path: directory + "/base.fvecs")
        let hasRecords = FileManager.default.fileExists(atPath: directory + "/records.jsonl.gz")
        records = hasRecords ? try DebianMiniLM.records(directory, limit: limit) : nil
        count = min(records?.count ?? vectors.rows, limit, vectors.rows)
        let queryFile = try VectorFiles.readFvecs(directory + "/queries.fvecs", expectedDimensions: vectors.dimensions)
        let truth = try VectorFiles.readIvecs(directory + "/groundtruth.ivecs")
        let distancesPath = directory + "/groundtruth-distances.fvecs"
        let truthDistances = FileManager.default.fileExists(atPath: distancesPath) ? try VectorFiles.readFvecs(distancesPath) : nil
        queries = (0..<queryFile.rows).map { Array(queryFile.row($0)) }
        let records = records
        let count = count
        func id(_ row: Int) -> String { records.map { $0[row].id } ?? "s\(row)" }
        acceptable = (0..<truth.rows).map { row in
            let neighbours = Array(truth.row(row))
            let distances = truthDistances.map { Array($0.row(row)) }
            let tenth = distances.map { $0[min(9, $0.count - 1)] }
            var set = Set<String>()
            for (rank, index) in neighbours.enumerated() where rank < 10 || (distances.map { $0[rank] <= (tenth ?? 0) + 1e-6 } ?? false) {
                if Int(index) < count { set.insert(id(Int(index))) }
            }
            return set
        }
    }

    func id(_ row: Int) -> String { records.map { $0[row].id } ?? "s\(row)" }

    /// The batches of `size` records, as row ranges (read when sent).
    func batchRanges(_ size: Int) -> [Range<Int>] {
        stride(from: 0, to: count, by: size).map { $0..<min($0 + size, count) }
    }

    /// One batch read from the file. With `nudged`, each vector's largest
    /// component is scaled by 1.01: beyond f16 rounding (so the stored vector
    /// changes), far inside the gaps between neighbours (so the ground truth still holds).
    func batch(_ range: Range<Int>, nudged: Bool = false) throws -> LoadBatch {
        let dimensions = vectors.dimensions
        var flat = [Float](repeating: 0, count: range.count * dimensions)
        try flat.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            try vectors.read(range.lowerBound, count: range.count, into: base)
        }
        let rows = (0..<range.count).map { offset -> [Float] in
            var vector = Array(flat[(offset * dimensions)..<((offset + 1) * dimensions)])
            if nudged, let largest = vector.indices.max(by: { abs(vector[$0]) < abs(vector[$1]) }) { vector[largest] *= 1.01 }
            return vector
        }
        let documents: [String]? = records.map { records in range.map { records[$0].embeddedText } }
        let metadatas: [Metadata] = range.map { row in
            guard let record = records?[row] else { return ["row": .int(Int64(row))] }
            var metadata: Metadata = record.strings.mapValues { .string($0) }
            metadata["installed_size"] = .int(Int64(record.installedSize))
            return metadata
        }
        return LoadBatch(ids: range.map(id), vectors: rows, documents: documents, metadatas: metadatas)
    }
}

public final class AtomicCounter: Sendable {
    private let value = Atomic<Int>(0)
    public init() {}
    public func next() -> Int { value.add(1, ordering: .relaxed).oldValue }
}

public final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    public init() {}
    public func set() { value.store(true, ordering: .releasing) }
    public var isSet: Bool { value.load(ordering: .acquiring) }
}
