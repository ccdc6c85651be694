import Foundation
import SextantDatasets
import SextantIndex
import SextantKernels
import SextantPayload
import SextantStorage
import SextantSupport

/// `sextant bench scale`: what one collection of N records costs through the
/// real storage code (WAL, indexer, checkpoints, growth), streamed from a
/// scaled set's base file: durable load and build time, the checkpoint, bytes
/// by part in memory and on disk, cold and warm open to a first answer, and
/// the open of a copy whose WAL holds a full checkpoint interval of writes
/// (what a restart after kill -9 replays).
public struct ScaleBenchmark {
    public struct Configuration: Sendable {
        public var base: String
        public var records: Int
        public var workDirectory = "/tmp"
        public var batchRecords = 1_000
        public var writers = 2
        public var quantization = StorageLimits.defaultQuantization
        /// Records written after the checkpoint for the replay measurement:
        /// enough to fill the WAL to just under the checkpoint bound.
        public var replayRecords: Int?

        public init(base: String, records: Int) {
            self.base = base
            self.records = records
        }
    }

    public struct Result: Codable, Sendable {
        public var records: Int
        public var quantization: String
        public var indexer_threads: Int
        public var load_seconds: Double
        public var durable_records_per_second: Double
        public var indexed_seconds: Double
        public var checkpoint_seconds: Double
        public var capacity_slots: Int
        public var vector_bytes: Int
        public var graph_bytes: Int
        public var code_bytes: Int
        public var heap_bytes: Int
        public var resident_search_bytes: Int
        public var resident_search_bytes_per_vector: Double
        public var disk_bytes: Int
        public var peak_rss_bytes: Int
        public var page_cache: String
        public var cold_open_milliseconds: Double
        public var cold_first_query_milliseconds: Double
        public var warm_open_milliseconds: Double
        public var warm_first_query_milliseconds: Double
        public var replay_wal_bytes: Int
        public var replay_records: Int
        public var replay_open_milliseconds: Double
        public var replay_first_query_milliseconds: Double
    }

    let configuration: Configuration
    public init(configuration: Configuration) { self.configuration = configuration }

    public func run(progress: @escaping @Sendable (String) -> Void) async throws -> Result {
        let reader = try FvecsReader(path: configuration.base)
        let records = min(configuration.records, reader.rows)
        guard records > 0 else { throw DatasetError.malformed(configuration.base, "no rows") }
        let dimensions = reader.dimensions
        let root = configuration.workDirectory + "/sextant-bench-scale-\(getpid())"
        try? FileManager.default.removeItem(atPath: root)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let directory = root + "/data"
        let threads = max(1, ProcessInfo.processInfo.activeProcessorCount)
        let engine = try StorageEngine(directory: directory, indexerThreads: threads)
        let (collection, _) = try await engine.create(CollectionConfiguration(
            name: "bench", dimension: dimensions, metric: .cosine, quantization: configuration.quantization))

        // Durable load: writers stream batches from the file, as `sextant load` does over the wire.
        let batchRecords = configuration.batchRecords
        let batches = (records + batchRecords - 1) / batchRecords
        let next = Counter()
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<max(1, configuration.writers) {
                group.addTask {
                    while true {
                        let batch = next.next()
                        guard batch < batches else { return }
                        let first = batch * batchRecords
                        let inputs = try Self.inputs(reader, first: first, count: min(batchRecords, records - first), prefix: "s")
                        _ = try await collection.write(.add(inputs))
                        if batch % 100 == 99 { progress("loaded \(first + inputs.count) of \(records)") }
                    }
                }
            }
            try await group.waitForAll()
        }
        let loadSeconds = (ContinuousClock.now - start).seconds
        progress(String(format: "%d records durable in %.1f s; waiting for the indexer", records, loadSeconds))
        while collection.stats().unindexedRecords > 0 { try await Task.sleep(for: .milliseconds(20)) }
        let indexedSeconds = (ContinuousClock.now - start).seconds
        progress(String(format: "indexed after %.1f s; checkpoint", indexedSeconds))
        let checkpointStart = ContinuousClock.now
        try await collection.checkpoint()
        let checkpointSeconds = (ContinuousClock.now - checkpointStart).seconds
        let stats = collection.stats()
        progress(String(format: "checkpoint %.2f s; resident search bytes per vector %.0f", checkpointSeconds,
                        Double(stats.residentSearchBytes) / Double(records)))

        // A full checkpoint interval of writes left in the WAL, copied as a
        // kill -9 would leave it (a snapshot copies exactly the acknowledged WAL).
        let replayRecords = configuration.replayRecords
            ?? max(1, (StorageLimits.checkpointWALBytes * 15 / 16) / (dimensions * 2 + 64))
        let replayBatches = (replayRecords + batchRecords - 1) / batchRecords
        for batch in 0..<replayBatches {
            let first = batch * batchRecords
            let count = min(batchRecords, replayRecords - first)
            _ = try await collection.write(.add(try Self.inputs(reader, first: first % max(1, records - count), count: count, prefix: "w\(batch)-")))
        }
        let walBytes = collection.stats().walBytes
        let replayDirectory = root + "/replay"
        _ = try await engine.snapshot([collection], to: replayDirectory)
        let peak = ProcessMemory.peakResidentBytes()
        try await engine.close()
        let diskBytes = StorageBenchmark.treeSize(directory + "/collections")

        // The replay copy holds the same checkpoint plus the WAL: its open minus a warm open is the replay.
        let dropped = StorageBenchmark.dropPageCache()
        let query = try reader.row(0)
        let (coldOpen, coldQuery) = try StorageBenchmark.openAndQuery(directory, io: .shared, query: query)
        let (warmOpen, warmQuery) = try StorageBenchmark.openAndQuery(directory, io: .shared, query: query)
        progress(String(format: "open cold %.0f ms + first query %.1f ms; warm %.0f ms + %.1f ms", coldOpen, coldQuery, warmOpen, warmQuery))
        let (replayOpen, replayQuery) = try StorageBenchmark.openAndQuery(replayDirectory, io: .shared, query: query)
        progress(String(format: "open with %d WAL bytes to replay: %.0f ms", walBytes, replayOpen))
        return Result(
            records: records, quantization: configuration.quantization.rawValue, indexer_threads: threads,
            load_seconds: loadSeconds, durable_records_per_second: Double(records) / loadSeconds,
            indexed_seconds: indexedSeconds, checkpoint_seconds: checkpointSeconds, capacity_slots: stats.capacitySlots,
            vector_bytes: stats.vectorBytes, graph_bytes: stats.graphBytes, code_bytes: stats.codeBytes,
            heap_bytes: stats.heapBytes, resident_search_bytes: stats.residentSearchBytes,
            resident_search_bytes_per_vector: Double(stats.residentSearchBytes) / Double(records), disk_bytes: diskBytes,
            peak_rss_bytes: peak, page_cache: dropped ? "dropped" : "warm (drop_caches not permitted)",
            cold_open_milliseconds: coldOpen, cold_first_query_milliseconds: coldQuery, warm_open_milliseconds: warmOpen,
            warm_first_query_milliseconds: warmQuery, replay_wal_bytes: walBytes, replay_records: replayRecords,
            replay_open_milliseconds: replayOpen, replay_first_query_milliseconds: replayQuery)
    }

    /// Rows [first, first + count) as records with a short document and one integer field.
    static func inputs(_ reader: FvecsReader, first: Int, count: Int, prefix: String) throws -> [RecordInput] {
        let dimensions = reader.dimensions
        var floats = [Float](repeating: 0, count: count * dimensions)
        try floats.withUnsafeMutableBufferPointer { (buffer) throws in
            guard let base = buffer.baseAddress else { return }
            try reader.read(first, count: count, into: base)
        }
        return (0..<count).map { row in
            RecordInput(id: "\(prefix)\(first + row)", vector: Array(floats[(row * dimensions)..<((row + 1) * dimensions)]),
                        document: "scaled record \(first + row)", metadata: ["row": .int(Int64(first + row))])
        }
    }
}
