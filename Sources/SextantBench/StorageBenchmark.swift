import Foundation
import SextantDatasets
import SextantPayload
import SextantStorage
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `sextant bench storage`: durable ingest of the debian-minilm records through
/// the real storage code, on io_uring and on the pwrite+fdatasync fallback in
/// the same run; bytes on disk against the raw data; cold open to first answer.
public struct StorageBenchmark {
    public struct Configuration: Sendable {
        public var dataset: String
        public var workDirectory = "/tmp"
        public var batchRecords = 1_000
        public var writers = 4
        public var rounds = 2
        public var limit = Int.max

        public init(dataset: String) { self.dataset = dataset }
    }

    public struct Result: Codable, Sendable {
        public var backend: String
        public var round: Int
        public var records: Int
        public var batch_records: Int
        public var writers: Int
        public var ingest_seconds: Double
        public var durable_records_per_second: Double
        public var indexed_seconds: Double
        public var raw_bytes: Int
        public var disk_bytes: Int
        public var disk_ratio: Double
        public var cold_open_milliseconds: Double
        public var cold_first_query_milliseconds: Double
        public var page_cache: String
        public var warm_open_milliseconds: Double
        public var warm_first_query_milliseconds: Double
    }

    let configuration: Configuration
    public init(configuration: Configuration) { self.configuration = configuration }

    public func run(progress: @escaping @Sendable (String) -> Void) async throws -> [Result] {
        let records = try DebianMiniLM.records(configuration.dataset, limit: configuration.limit)
        let vectors = try VectorFiles.readFvecs(configuration.dataset + "/base.fvecs")
        let queries = try VectorFiles.readFvecs(configuration.dataset + "/queries.fvecs", expectedDimensions: vectors.dimensions)
        let inputs = records.enumerated().map { index, record in
            var metadata: Metadata = record.strings.mapValues { .string($0) }
            metadata["installed_size"] = .int(Int64(record.installedSize))
            return RecordInput(id: record.id, vector: Array(vectors.row(index)), document: record.embeddedText, metadata: metadata)
        }
        let rawBytes = inputs.reduce(0) { total, input in
            total + vectors.dimensions * 2 + (input.document?.utf8.count ?? 0)
                + MetadataCodec.encode(input.metadata ?? [:]).count + input.id.utf8.count
        }
        progress("loaded \(inputs.count) records; raw f16 vectors + documents + metadata + ids = \(rawBytes) bytes")
        var results: [Result] = []
        for round in 1...max(1, configuration.rounds) {
            for backend in [DurableIO.Backend.uring, .sync] {
                let result = try await measure(backend: backend, round: round, inputs: inputs, rawBytes: rawBytes,
                                               dimensions: vectors.dimensions, query: Array(queries.row(0)))
                progress(String(format: "%@ round %d: %.0f records/s durable, disk %.2fx raw, cold open+query %.1f ms",
                                backend.rawValue, round, result.durable_records_per_second, result.disk_ratio,
                                result.cold_open_milliseconds + result.cold_first_query_milliseconds))
                results.append(result)
            }
        }
        return results
    }

    private func measure(backend: DurableIO.Backend, round: Int, inputs: [RecordInput], rawBytes: Int, dimensions: Int,
                         query: [Float]) async throws -> Result {
        let directory = configuration.workDirectory + "/sextant-bench-storage-\(getpid())-\(backend == .uring ? "uring" : "sync")"
        try? FileManager.default.removeItem(atPath: directory)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let io = DurableIO(preferring: backend)
        guard io.backend == backend else { throw DatasetError.malformed("io", "backend \(backend.rawValue) unavailable here") }
        let engine = try StorageEngine(directory: directory, io: io)
        let (collection, _) = try await engine.create(CollectionConfiguration(name: "bench", dimension: dimensions, metric: .cosine))
        let batches = stride(from: 0, to: inputs.count, by: configuration.batchRecords).map {
            Array(inputs[$0..<min($0 + configuration.batchRecords, inputs.count)])
        }
        let next = Counter()
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<max(1, configuration.writers) {
                group.addTask {
                    while true {
                        let index = next.next()
                        guard index < batches.count else { return }
                        _ = try await collection.write(.upsert(batches[index]))
                    }
                }
            }
            try await group.waitForAll()
        }
        let ingestSeconds = (ContinuousClock.now - start).seconds
        while collection.stats().unindexedRecords > 0 { try await Task.sleep(for: .milliseconds(5)) }
        let indexedSeconds = (ContinuousClock.now - start).seconds
        try await engine.close()
        let diskBytes = Self.treeSize(directory + "/collections")

        let dropped = Self.dropPageCache()
        let (coldOpen, coldQuery) = try Self.openAndQuery(directory, io: io, query: query)
        let (warmOpen, warmQuery) = try Self.openAndQuery(directory, io: io, query: query)
        return Result(
            backend: backend.rawValue, round: round, records: inputs.count, batch_records: configuration.batchRecords,
            writers: configuration.writers, ingest_seconds: ingestSeconds,
            durable_records_per_second: Double(inputs.count) / ingestSeconds, indexed_seconds: indexedSeconds,
            raw_bytes: rawBytes, disk_bytes: diskBytes, disk_ratio: Double(diskBytes) / Double(rawBytes),
            cold_open_milliseconds: coldOpen, cold_first_query_milliseconds: coldQuery,
            page_cache: dropped ? "dropped" : "warm (drop_caches not permitted)", warm_open_milliseconds: warmOpen,
            warm_first_query_milliseconds: warmQuery)
    }

    /// Opens the engine and answers one query; returns (open ms, first query ms).
    static func openAndQuery(_ directory: String, io: DurableIO, query: [Float]) throws -> (Double, Double) {
        let start = ContinuousClock.now
        let engine = try StorageEngine(directory: directory, io: io)
        defer { engine.indexer.stop() }
        let opened = ContinuousClock.now
        guard let collection = engine.collection(named: "bench") else { throw DatasetError.missingFile(directory) }
        let hits = try collection.query([query], k: 10)
        guard hits.first?.count == 10 else { throw DatasetError.malformed(directory, "first query returned too little") }
        let answered = ContinuousClock.now
        return ((opened - start).seconds * 1000, (answered - opened).seconds * 1000)
    }

    /// `sync; echo 3 > /proc/sys/vm/drop_caches` when this process may (root on a VM).
    static func dropPageCache() -> Bool {
        sync()
        guard let handle = FileHandle(forWritingAtPath: "/proc/sys/vm/drop_caches") else { return false }
        defer { try? handle.close() }
        do { try handle.write(contentsOf: Data("3\n".utf8)) } catch { return false }
        return true
    }

    static func treeSize(_ path: String) -> Int {
        guard let enumerator = FileManager.default.enumerator(atPath: path) else { return 0 }
        var total = 0
        while let name = enumerator.nextObject() as? String {
            let attributes = try? FileManager.default.attributesOfItem(atPath: path + "/" + name)
            if attributes?[.type] as? FileAttributeType == .typeRegular { total += (attributes?[.size] as? Int) ?? 0 }
        }
        return total
    }
}

/// A shared counter for handing out work items across tasks and threads.
public final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    public init() {}
    /// Returns the current value and advances it.
    public func next() -> Int { value.add(1, ordering: .relaxed).oldValue }
}
