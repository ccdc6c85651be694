import Foundation
import Histogram
import SextantClient
import SextantConcurrency
import SextantDatasets
import SextantEmbedding

/// `sextant bench ingest`: the seed's batch (20,000 debian-minilm rows, two
/// shared CSV batches) from CSV to acknowledged upserts by a real
/// `sextant ingest` process, while N clients query the same collection.
/// The collection first gets the other two batches, so queries have data.
public struct IngestBenchmark: Sendable {
    public enum Vectors: String, Sendable, Codable { case precomputed, builtin }

    public struct Latency: Codable, Sendable {
        public var queries: Int
        public var qps: Double
        public var p50_ms: Double
        public var p99_ms: Double
        public var max_ms: Double
        public var errors: Int
    }

    public struct Report: Codable, Sendable {
        public var vectors: Vectors
        public var rows: Int
        public var seconds: Double
        public var rows_per_second: Double
        public var clients: Int
        public var worker_niceness: Int
        /// The collection indexes its documents for BM25 (the worker's default).
        public var text_index: Bool
        public var idle: Latency
        public var during_ingest: Latency
    }

    public var engine: String
    public var dataset: String
    public var executable: String
    public var mapping: String
    public var vectors: Vectors
    public var clients = 8
    public var idleSeconds = 5.0
    /// The worker runs at this niceness, as `sextant up` runs it: a batch
    /// job yields the CPU to queries.
    public var workerNiceness = Int(BatchNiceness.workers)
    /// False: the worker creates the collection without its text index.
    public var textIndex = true

    public init(engine: String, dataset: String, executable: String, mapping: String, vectors: Vectors) {
        self.engine = engine
        self.dataset = dataset
        self.executable = executable
        self.mapping = mapping
        self.vectors = vectors
    }

    public func run(progress: @escaping @Sendable (String) -> Void) async throws -> Report {
        let work = NSTemporaryDirectory() + "sextant-bench-ingest-\(UUID().uuidString.prefix(8))"
        let inbox = work + "/inbox"
        try FileManager.default.createDirectory(atPath: inbox, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let collection = "bench-ingest-\(vectors.rawValue)"
        let client = try await SextantClient.connect(to: engine)
        try? await client.deleteCollection(name: collection)

        var arguments = ["ingest", "--data", work, "--engine", engine, "--collection", collection, "--source", inbox, "--once",
                         "--no-progress", "--batch", "1000"] + (textIndex ? [] : ["--no-text-index"])
        if vectors == .precomputed {
            arguments += ["--mapping", mapping, "--vectors", dataset + "/base.fvecs"]
        } else {
            // The same columns, minus the precomputed vectors: the built-in embedder makes them.
            let text = try String(contentsOfFile: mapping, encoding: .utf8)
            let withoutVectors = text.replacingOccurrences(
                of: #",\s*"precomputed_vectors":\s*\{[^}]*\{[^}]*\}\s*\}"#, with: "", options: .regularExpression)
            try withoutVectors.write(toFile: work + "/mapping.json", atomically: true, encoding: .utf8)
            arguments += ["--mapping", work + "/mapping.json", "--embedder", "sextant-hash"]
        }
        for k in [3, 4] { try FileManager.default.copyItem(atPath: dataset + "/csv/batch_\(k).csv", toPath: inbox + "/batch_\(k).csv") }
        progress("preloading batches 3 and 4")
        _ = try runProcess(arguments)
        let handle = try await client.getCollection(name: collection)
        // Idle means idle: wait for the indexer to link the preloaded rows.
        while let stats = try await client.stats().first(where: { $0.name == collection }), stats.unindexedRecords > 0 {
            try await Task.sleep(for: .milliseconds(50))
        }
        let queries = try queryVectors()
        let idle = try await pressure(handle, queries, until: nil)
        progress(String(format: "idle: %.0f qps, p99 %.2f ms", idle.qps, idle.p99_ms))

        for k in [1, 2] { try FileManager.default.copyItem(atPath: dataset + "/csv/batch_\(k).csv", toPath: inbox + "/batch_\(k).csv") }
        let start = ContinuousClock.now
        let finished = StopFlag()
        let runner = Task.detached { () throws -> Double in
            defer { finished.set() }
            _ = try runProcess(arguments)
            return (ContinuousClock.now - start).seconds
        }
        let busy = try await pressure(handle, queries, until: finished)
        let seconds = try await runner.value
        let count = try await handle.count()
        await client.close()
        guard count == 40_000 else { throw SextantError(.internal, "expected 40,000 records after the run, found \(count)") }
        progress(String(format: "20,000 rows in %.2f s while querying: %.0f qps, p99 %.2f ms", seconds, busy.qps, busy.p99_ms))
        return Report(vectors: vectors, rows: 20_000, seconds: seconds, rows_per_second: 20_000 / seconds, clients: clients,
                      worker_niceness: workerNiceness, text_index: textIndex, idle: idle, during_ingest: busy)
    }

    private func runProcess(_ arguments: [String]) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/nice")
        process.arguments = ["-n", "\(workerNiceness)", executable] + arguments
        process.standardOutput = FileHandle.nullDevice
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let output = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw SextantError(.internal, "sextant ingest failed: \(String(decoding: output.suffix(2_000), as: UTF8.self))")
        }
        return process.terminationStatus
    }

    /// The public queries as vectors in the collection's space.
    private func queryVectors() throws -> [[Float]] {
        switch vectors {
        case .precomputed:
            let file = try VectorFiles.readFvecs(dataset + "/queries.fvecs")
            return (0..<file.rows).map { Array(file.row($0)) }
        case .builtin:
            let text = try String(contentsOfFile: dataset + "/queries.txt", encoding: .utf8)
            let embedder = HashingEmbedder()
            return text.split(separator: "\n").map { embedder.vector(String($0)) }
        }
    }

    /// N clients query (k = 10) for `idleSeconds`, or until `until` is set.
    private func pressure(_ handle: CollectionHandle, _ queries: [[Float]], until: StopFlag?) async throws -> Latency {
        let stop = until ?? StopFlag()
        let next = AtomicCounter()
        let start = ContinuousClock.now
        // Each client runs on the event loop serving its connection, as in `sextant load`.
        let samples = await withTaskGroup(of: (Histogram<UInt64>, Int, Int).self) { group in
            for number in 0..<clients {
                group.addTask(executorPreference: handle.client.executor(forCaller: number)) {
                    var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000)
                    var count = 0
                    var errors = 0
                    while !stop.isSet {
                        let vector = queries[next.next() % queries.count]
                        let began = ContinuousClock.now
                        do {
                            _ = try await handle.query(vectors: [vector], k: 10, include: [])
                            _ = histogram.record(UInt64(max(1, (ContinuousClock.now - began).seconds * 1e6)))
                            count += 1
                        } catch {
                            errors += 1
                        }
                    }
                    return (histogram, count, errors)
                }
            }
            if until == nil {
                try? await Task.sleep(for: .milliseconds(Int(idleSeconds * 1_000)))
                stop.set()
            }
            var all: [(Histogram<UInt64>, Int, Int)] = []
            for await sample in group { all.append(sample) }
            return all
        }
        let elapsed = (ContinuousClock.now - start).seconds
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000)
        for sample in samples { histogram.add(sample.0) }
        let queriesRun = samples.reduce(0) { $0 + $1.1 }
        return Latency(queries: queriesRun, qps: Double(queriesRun) / elapsed,
                       p50_ms: Double(histogram.valueAtPercentile(50)) / 1_000, p99_ms: Double(histogram.valueAtPercentile(99)) / 1_000,
                       max_ms: Double(histogram.max) / 1_000, errors: samples.reduce(0) { $0 + $1.2 })
    }
}
