import ArgumentParser
import Foundation
import SextantBench
import SextantIndex
import SextantKernels
import SextantClient
import SextantConcurrency
import SextantLoad
import SextantMiniLM
import SextantPayload
import SextantSoak
import SextantStorage

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks that run the engine's own code.", subcommands: [BenchANN.self, BenchStorage.self, BenchScale.self, BenchIngest.self, BenchBM25.self, BenchKnownItem.self,
                      BenchFiltered.self, BenchReplica.self])
}

struct BenchANN: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ann",
        abstract: "Build the index from fvecs and report recall@k and single-thread QPS per ef (JSON lines).")

    @Option(help: "Base vectors (.fvecs).") var base: String
    @Option(help: "Query vectors (.fvecs).") var queries: String
    @Option(help: "Ground-truth neighbour ids (.ivecs), best first.") var groundtruth: String
    @Option(help: "Neighbours per query.") var k = 10
    @Option(help: "Comma-separated ef values.") var ef = "16,32,64,128,256"
    @Option(help: "HNSW M.") var m = 16
    @Option(name: .customLong("ef-construction"), help: "HNSW efConstruction.") var efConstruction = 200
    @Option(help: "cosine, ip or l2.") var metric = "cosine"
    @Option(help: "Threads used to build the index (queries are always single-threaded).") var threads = 1
    @Option(help: "Timed passes over the queries per ef; the fastest is reported.") var passes = 3
    @Option(help: "What the walk reads: none (float16 vectors), int8 or bits1 (codes; float16 read only for the final ranking). Default: a new collection's.")
    var quantization = StorageLimits.defaultQuantization.rawValue
    @Flag(help: "Evict the float16 vectors from the page cache before each timed pass (with --quantization int8|bits1).")
    var cold = false
    @Option(help: "Folder for the float16 vectors file of a quantized index.") var work = "/tmp"
    @Option(name: .customLong("locality-order"),
            help: "Renumber slots depth-first along nearest links after the build: on, off (insertion order) or compare (each ef measured before and after, same graph).")
    var localityOrder = "on"
    @Option(help: "Comma-separated candidate counts ranked exactly against float16 after a quantized walk (0: the index default, min(ef, max(3k, 32)); 9999: all ef).")
    var rerank = "0"
    @Flag(help: "Print only the JSON lines (no progress on stderr).") var json = false

    func run() throws {
        let efValues = ef.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !efValues.isEmpty, efValues.count == ef.split(separator: ",").count else {
            throw ValidationError("--ef must be a comma-separated list of integers, got '\(ef)'")
        }
        guard let metric = Metric(rawValue: metric) else { throw ValidationError("--metric must be cosine, ip or l2") }
        guard threads >= 1, threads <= 256 else { throw ValidationError("--threads must be in 1...256") }
        guard let quantization = Quantization(rawValue: quantization) else {
            throw ValidationError("--quantization must be one of \(Quantization.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var configuration = ANNBenchmark.Configuration(basePath: base, queriesPath: queries, groundTruthPath: groundtruth)
        configuration.k = k
        configuration.efValues = efValues
        configuration.parameters = HNSWParameters(m: m, efConstruction: efConstruction, ef: efValues[0])
        configuration.metric = metric
        configuration.buildThreads = threads
        configuration.passes = passes
        configuration.quantization = quantization
        configuration.cold = cold
        configuration.workDirectory = work
        guard let locality = ANNBenchmark.LocalityOrder(rawValue: localityOrder) else {
            throw ValidationError("--locality-order must be on, off or compare")
        }
        configuration.localityOrder = locality
        let rerankValues = rerank.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !rerankValues.isEmpty, rerankValues.count == rerank.split(separator: ",").count, rerankValues.allSatisfy({ $0 >= 0 })
        else { throw ValidationError("--rerank must be a comma-separated list of counts (0: the default), got '\(rerank)'") }
        configuration.rerankValues = rerankValues.map { $0 == 0 ? nil : $0 }
        let quiet = json
        let results = try ANNBenchmark(configuration: configuration).run { message in
            if !quiet { FileHandle.standardError.write(Data("\(message)\n".utf8)) }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        for result in results {
            print(String(decoding: try encoder.encode(result), as: UTF8.self))
        }
    }
}

struct BenchBM25: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bm25",
        abstract: "Index the debian-minilm bodies for BM25 and answer the 1,000 public queries single-threaded, top 10 (JSON).")

    @Option(help: "The debian-minilm dataset folder.") var dataset: String
    @Option(help: "Timed passes over the queries; the fastest is reported.") var passes = 3
    @Option(help: "Results per query.") var k = 10

    func run() throws {
        var benchmark = BM25Benchmark(dataset: dataset)
        benchmark.passes = passes
        benchmark.k = k
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(try benchmark.run()), as: UTF8.self))
    }
}

struct BenchKnownItem: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "known-item",
        abstract: "Find debian-minilm records again from 4-8 consecutive words of their bodies: MRR@10 of semantic, lexical and hybrid search (JSON).")

    @Option(help: "The debian-minilm dataset folder.") var dataset: String
    @Option(help: "Records drawn (one query each).") var queries = 1_000
    @Option(help: "Seed of the draw.") var seed: UInt64 = 1
    @Option(help: "Where to create the temporary data folder.") var work = "/tmp"

    func run() async throws {
        guard let directory = MiniLMEmbedder.locateModel() else {
            throw ValidationError("the MiniLM weights are not installed (tools/setup installs them); semantic queries need them")
        }
        let embedder = try MiniLMEmbedder(modelDirectory: directory)
        var benchmark = KnownItemBenchmark(dataset: dataset)
        benchmark.queries = queries
        benchmark.seed = seed
        benchmark.workDirectory = work
        let report = try await benchmark.run(embed: { try embedder.embedSync($0) }, progress: { FileHandle.standardError.write(Data(($0 + "\n").utf8)) })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(report), as: UTF8.self))
    }
}

struct BenchStorage: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "storage",
        abstract: "Durable ingest (io_uring vs pwrite fallback), disk usage, cold open + first query.")

    @Option(help: "The debian-minilm dataset folder.") var dataset: String
    @Option(help: "Where to create the temporary data folders.") var work = "/tmp"
    @Option(help: "Records per write batch.") var batch = 1_000
    @Option(help: "Concurrent writers.") var writers = 4
    @Option(help: "Rounds (each runs both backends).") var rounds = 2
    @Option(help: "Use only the first N records.") var limit = Int.max
    @Flag(help: "Print only the JSON lines.") var json = false

    func run() async throws {
        var configuration = StorageBenchmark.Configuration(dataset: dataset)
        configuration.workDirectory = work
        configuration.batchRecords = batch
        configuration.writers = writers
        configuration.rounds = rounds
        configuration.limit = limit
        let quiet = json
        let results = try await StorageBenchmark(configuration: configuration).run { message in
            if !quiet { FileHandle.standardError.write(Data("\(message)\n".utf8)) }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        for result in results { print(String(decoding: try encoder.encode(result), as: UTF8.self)) }
    }
}

struct BenchScale: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale",
        abstract: "One collection of N records through the storage code: load, build, checkpoint, bytes by part, cold open, WAL replay.")

    @Option(help: "An .fvecs base file (a scaled set's base.fvecs).") var base: String
    @Option(help: "Records to load (at most the file's rows).") var records: Int
    @Option(help: "Where to create the temporary data folders.") var work = "/tmp"
    @Option(help: "Records per write batch.") var batch = 1_000
    @Option(help: "Concurrent writers.") var writers = 2
    @Option(help: "The collection's quantization: none, int8 or bits1.") var quantization = StorageLimits.defaultQuantization.rawValue
    @Flag(help: "Print only the JSON line.") var json = false

    func run() async throws {
        guard let chosen = Quantization(rawValue: quantization) else {
            throw ValidationError("--quantization must be none, int8 or bits1")
        }
        var configuration = ScaleBenchmark.Configuration(base: base, records: records)
        configuration.workDirectory = work
        configuration.batchRecords = batch
        configuration.writers = writers
        configuration.quantization = chosen
        let quiet = json
        let result = try await ScaleBenchmark(configuration: configuration).run { message in
            if !quiet { FileHandle.standardError.write(Data("\(message)\n".utf8)) }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(result), as: UTF8.self))
    }
}

struct BenchFiltered: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "filtered",
        abstract: "Filtered search at 50%, 5%, 0.5% and 0.05% selectivity on an indexed field: recall@10 and p50 beside unfiltered, one run.")

    @Option(help: "A dataset folder with base.fvecs and queries.fvecs (debian-minilm or a scaled set).") var dataset: String
    @Option(help: "Records to load (at most the base file's rows).") var records: Int
    @Option(help: "Queries (the first N of queries.fvecs).") var queries = 200
    @Option(help: "Timed rounds over the queries.") var rounds = 3
    @Option(help: "Where to create the temporary data folder.") var work = "/tmp"
    @Flag(help: "Leave the field unindexed (filters evaluated record by record, selectivity sampled).") var noIndex = false
    @Option(help: "The graph walk's breadth (default: the collection's).") var ef: Int?
    @Flag(help: "Print only the JSON line.") var json = false

    func run() async throws {
        var configuration = FilteredBenchmark.Configuration(base: dataset + "/base.fvecs", queries: dataset + "/queries.fvecs", records: records)
        configuration.queryCount = queries
        configuration.rounds = rounds
        configuration.workDirectory = work
        configuration.indexed = !noIndex
        configuration.ef = ef
        let quiet = json
        let result = try await FilteredBenchmark(configuration: configuration).run { message in
            if !quiet { FileHandle.standardError.write(Data("\(message)\n".utf8)) }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(result), as: UTF8.self))
    }
}

struct LoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Ingest debian-minilm while N clients query; latency idle and during ingest, ingest rate, recall@10.")

    @OptionGroup var engine: EngineOptions
    @Option(help: "The debian-minilm dataset folder.") var data: String
    @Option(help: "Concurrent query clients.") var clients = 8
    @Option(help: "Records per write batch.") var batch = 1_000
    @Option(help: "Concurrent writers during the ingest phase.") var writers = 2
    @Option(help: "Ingest rate during the measured phase: 'max' or RECORDS/day (e.g. 80000/day).") var rate = "max"
    @Option(name: .customLong("day-seconds"), help: "Length of the compressed day for RECORDS/day.") var daySeconds = 60.0
    @Option(name: .customLong("idle-seconds"), help: "Length of the idle measurement.") var idleSeconds = 10.0
    @Option(help: "What the measured phase writes: 'changed' (every vector moved by 1%, so each record is re-indexed) or 'identical' (the records as loaded).")
    var replay = "changed"
    @Option(help: "Collection to (re)create for the test.") var collection = "load"
    @Option(help: "Search ef (default: the collection's).") var ef: Int?
    @Option(help: "Use only the first N records.") var limit = Int.max
    @Option(help: "Measure a server speaking ChromaDB's REST API at this URL (ChromaDB, or Sextant's API) instead of the engine.")
    var chroma: String?
    @Option(name: .customLong("settle-engine"),
            help: "With --chroma against Sextant's API: the engine, to wait until everything is indexed before measuring.")
    var settleEngine: String?
    @Option(name: .customLong("prepare-only"),
            help: "With --chroma: load and index the records, write the query requests to this file for wrk, and stop.")
    var prepareOnly: String?
    @Option(help: "Instead of ingesting while querying: compare these search modes idle, e.g. 'semantic,hybrid' (the first is the baseline).")
    var modes: String?
    @Option(help: "With --modes: interleaved rounds.") var rounds = 3
    @Flag(name: .customLong("modes-during-ingest"), help: "With --modes: also measure each mode while the records are re-ingested at --rate.")
    var modesDuringIngest = false
    @Flag(help: "Print only the JSON report.") var json = false

    func run() async throws {
        var configuration = LoadTest.Configuration(dataset: data)
        configuration.clients = clients
        configuration.batchRecords = batch
        configuration.writers = writers
        configuration.rate = try LoadTest.Rate(parsing: rate)
        configuration.daySeconds = daySeconds
        configuration.idleSeconds = idleSeconds
        guard let replayKind = LoadTest.Replay(rawValue: replay) else {
            throw ValidationError("--replay takes 'changed' or 'identical'")
        }
        configuration.replay = replayKind
        configuration.collection = collection
        configuration.limit = limit
        let target: any LoadTarget
        if let chroma {
            var settle: SextantClient? = nil
            if let settleEngine { settle = try await SextantClient.connect(to: settleEngine) }
            target = ChromaTarget(url: chroma, label: settle == nil ? "chromadb" : "sextant-api", settleEngine: settle)
        } else {
            var clientConfiguration = try engine.configuration()
            clientConfiguration.connections = max(1, clients)
            target = SextantTarget(client: try await SextantClient.connect(clientConfiguration), ef: ef)
        }
        let quiet = json
        if let modes {
            guard let sextant = target as? SextantTarget else { throw ValidationError("--modes measures the engine, not --chroma") }
            let parsed = try modes.split(separator: ",").map { name in
                guard let mode = SearchMode(rawValue: String(name)) else { throw ValidationError("--modes: semantic, lexical, hybrid") }
                return mode
            }
            let report = try await LoadTest(configuration: configuration).runModes(target: sextant, modes: parsed, rounds: max(1, rounds),
                                                                               duringIngest: modesDuringIngest) { message in
                if !quiet { FileHandle.standardError.write(Data("\(message)\n".utf8)) }
            }
            await target.close()
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        if let prepareOnly {
            try await LoadTest(configuration: configuration).prepareOnly(target: target, requestsPath: prepareOnly) { message in
                if !quiet { FileHandle.standardError.write(Data("\(message)\n".utf8)) }
            }
            await target.close()
            return
        }
        let report = try await LoadTest(configuration: configuration).run(target: target) { message in
            if !quiet { FileHandle.standardError.write(Data("\(message)\n".utf8)) }
        }
        await target.close()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(report), as: UTF8.self))
    }
}

struct BenchIngest: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "20,000 debian-minilm CSV rows to acknowledged upserts by `sextant ingest` while clients query (engine must be running).")

    @OptionGroup var engine: EngineOptions
    @Option(help: "The debian-minilm dataset folder.") var dataset: String
    @Option(help: "precomputed (base.fvecs) or builtin (the no-network embedder).") var vectors = "precomputed"
    @Option(help: "The mapping file.") var mapping = "tools/mappings/debian-minilm.json"
    @Option(help: "Concurrent query clients.") var clients = 8
    @Option(name: .customLong("worker-nice"), help: "Niceness of the ingest process (default: what sextant up uses).") var workerNice = Int(BatchNiceness.workers)
    @Flag(name: .customLong("no-text-index"), help: "The worker creates the collection without its BM25 index.") var noTextIndex = false
    @Flag(help: "Print only the JSON report.") var json = false

    func run() async throws {
        guard let kind = IngestBenchmark.Vectors(rawValue: vectors) else { throw ValidationError("--vectors: precomputed or builtin") }
        let executable = CommandLine.arguments[0].hasPrefix("/")
            ? CommandLine.arguments[0] : FileManager.default.currentDirectoryPath + "/" + CommandLine.arguments[0]
        var benchmark = IngestBenchmark(engine: engine.engine, dataset: dataset, executable: executable, mapping: mapping, vectors: kind)
        benchmark.clients = clients
        benchmark.workerNiceness = workerNice
        benchmark.textIndex = !noTextIndex
        let quiet = json
        let report = try await benchmark.run { message in
            if !quiet { FileHandle.standardError.write(Data("\(message)\n".utf8)) }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(report), as: UTF8.self))
    }
}

struct BenchReplica: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replica",
        abstract: "A primary (--ship-to) and a read replica (--follow) as processes: the lag from a write's acknowledgement to the replica answering with it.")

    @Option(help: "Folder for both engines' data and logs (emptied first).") var work = "/tmp/sextant-bench-replica"
    @Option(help: "s3://, gs:// or file:/// location (default: a folder under --work).") var location: String?
    @Option(help: "Writes, one after another.") var writes = 200
    @Option(name: .customLong("records-per-write"), help: "Records in each write.") var recordsPerWrite = 100
    @Option(help: "Vector dimensions.") var dimensions = 384
    @Option(name: .customLong("pause-ms"), help: "Pause after each write reached the replica.") var pauseMilliseconds = 50
    @Option(name: .customLong("ship-interval-ms"), help: "The engines' --ship-interval-ms.") var shipIntervalMilliseconds = 1_000
    @Option(help: "Records written and snapshotted before the replica starts (its start is timed).") var preload = 0
    @Flag(name: .customLong("ack-after-ship"), help: "Run the primary with --ack-after-ship.") var ackAfterShip = false
    @Option(help: "Writers upserting 1,000-record batches at full speed while the lag is measured.") var flood = 0
    @Option(name: .customLong("query-seconds"), help: "Then closed-loop queries on the primary and on the replica, alternating, this long each (0: none).")
    var querySeconds = 0.0
    @Flag(help: "Print only the JSON line.") var json = false

    func run() async throws {
        var configuration = ReplicaLag.Configuration(executable: ownExecutable(), workDirectory: work)
        configuration.preloadRecords = preload
        configuration.acknowledgeAfterShipping = ackAfterShip
        configuration.floodWriters = flood
        configuration.querySeconds = querySeconds
        configuration.location = location
        configuration.writes = writes
        configuration.recordsPerWrite = recordsPerWrite
        configuration.dimensions = dimensions
        configuration.pauseMilliseconds = pauseMilliseconds
        configuration.shipIntervalMilliseconds = shipIntervalMilliseconds
        let quiet = json
        SoakChildren.stopOnSignals()
        let report = try await ReplicaLag(configuration: configuration).run { message in
            if !quiet { FileHandle.standardError.write(Data("\(message)\n".utf8)) }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(report), as: UTF8.self))
    }
}
