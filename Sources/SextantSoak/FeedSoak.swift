import Foundation
import Histogram
import Logging
import SextantBackup
import SextantClient
import SextantDatasets
import SextantObjectStore
import SextantPayload
import Synchronization

/// `sextant soak feed`: weeks of seed 003's tender feed compressed into
/// minutes per day, against the engine as its own process, while query
/// clients search and a backup runs every quarter day. Each simulated day
/// ends with a measurement: the engine's disk and memory, live and dead slots,
/// WAL and checkpoint bytes, the day's query latency, and recall@10 against
/// exact ground truth of that day's live set. The question it answers: does
/// a month of writes, re-publications and deletions leave the engine as
/// fast, as accurate and as large as it was once the live set stopped growing.
public struct FeedSoak: Sendable {
    public struct Configuration: Sendable {
        /// A folder made by make_scaled.py (base.fvecs, queries.fvecs), or debian-minilm.
        public var dataset: String
        /// Engine data, backups and logs; removed at the end unless `keepData`.
        public var workDirectory: String
        /// The `sextant` binary to run the engine with.
        public var executable: String
        public var plan = SoakFeed.Plan()
        /// Wall-clock length of a simulated day (measurement not included).
        public var daySeconds = 110.0
        public var clients = 8
        /// Each query client's pace; 0 asks as fast as answers come back.
        public var queriesPerSecondPerClient = 25.0
        /// Queries whose recall@10 is measured at the end of each day: the same
        /// first N every day, so that a change from one day to the next is the
        /// engine's, not a different sample's (with 200 queries rotating
        /// through the set, consecutive days differed by up to 0.03).
        public var recallQueries = 1_000
        public var batchRecords = 1_000
        public var writers = 2
        public var backupsPerDay = 4
        public var keepBackups = 2
        public var textIndex = true
        /// The collection's search ef (nil: the engine's default). A million scaled
        /// records need about 192 for recall@10 0.95 (docs/BENCHMARKS.md).
        public var ef: Int?
        /// The first day of the steady state the targets compare against.
        public var steadyFromDay = 15
        public var engineArguments: [String] = []
        public var keepData = false

        public init(dataset: String, workDirectory: String, executable: String) {
            self.dataset = dataset
            self.workDirectory = workDirectory
            self.executable = executable
        }
    }

    /// One simulated day, measured at its end.
    public struct Day: Codable, Sendable {
        public var day: Int
        public var wall_seconds: Double
        public var added: Int
        public var republished: Int
        public var deleted: Int
        public var live_records: Int
        public var live_expected: Int
        public var dead_slots: Int
        public var unindexed_records: Int
        public var capacity_slots: Int
        public var disk_bytes: Int
        public var wal_bytes: Int
        public var checkpoint_bytes: Int
        public var rss_bytes: Int
        public var rss_anonymous_bytes: Int
        public var rss_file_bytes: Int
        public var queries: Int
        public var query_errors: Int
        public var p50_ms: Double
        public var p99_ms: Double
        public var recall_at_10: Double
        public var write_seconds: Double
        public var backups: Int
        public var backup_seconds: Double
        public var backup_store_bytes: Int
    }

    public struct Targets: Codable, Sendable {
        public var steady_from_day: Int
        public var disk_ratio_max: Double
        public var rss_ratio_max: Double
        public var p99_ratio_max: Double
        public var recall_min: Double
        public var counts_match: Bool
        public var met: Bool
    }

    public struct Report: Codable, Sendable {
        public var plan: SoakFeed.Plan
        public var day_seconds: Double
        public var ef: Int?
        public var clients: Int
        public var queries_per_second_per_client: Double
        public var wall_seconds: Double
        public var days: [Day]
        public var targets: Targets
        public var reopen_milliseconds: Double
        public var reopen_count: Int
        public var backup_failures: Int
        public var csv: String
        public var plot: String?
    }

    let configuration: Configuration
    public init(configuration: Configuration) { self.configuration = configuration }

    public func run(progress: @escaping @Sendable (String) -> Void) async throws -> Report {
        let settings = configuration
        try settings.plan.validate()
        guard settings.clients >= 0, settings.clients <= 256 else { throw SoakError.invalid("clients must be in 0...256") }
        guard settings.daySeconds > 0 else { throw SoakError.invalid("a day lasts more than 0 s") }
        guard settings.backupsPerDay >= 0, settings.backupsPerDay <= 96 else { throw SoakError.invalid("backups per day must be in 0...96") }
        let reader = try FvecsReader(path: settings.dataset + "/base.fvecs")
        guard reader.rows >= settings.plan.rowsNeeded else {
            throw SoakError.invalid("\(settings.dataset) holds \(reader.rows) vectors; \(settings.plan.days) days of "
                + "\(settings.plan.recordsPerDay) records need \(settings.plan.rowsNeeded) (make_scaled.py --records \(settings.plan.rowsNeeded))")
        }
        let queryFile = try VectorFiles.readFvecs(settings.dataset + "/queries.fvecs", expectedDimensions: reader.dimensions)
        let queries = (0..<queryFile.rows).map { Array(queryFile.row($0)) }
        guard !queries.isEmpty else { throw SoakError.invalid("no queries in \(settings.dataset)/queries.fvecs") }

        let work = settings.workDirectory
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let dataRoot = work + "/data"
        try? FileManager.default.removeItem(atPath: dataRoot)
        try? FileManager.default.removeItem(atPath: work + "/backups")
        defer {
            if !settings.keepData {
                try? FileManager.default.removeItem(atPath: dataRoot)
                try? FileManager.default.removeItem(atPath: work + "/backups")
            }
        }
        var engine = try startEngine(dataRoot: dataRoot, log: work + "/engine.log")
        defer { engine.stop() }
        progress("engine pid \(engine.pid) on port \(engine.port)")

        let address = try EngineAddress(parsing: "127.0.0.1:\(engine.port)")
        var queryConfiguration = ClientConfiguration(address: address)
        queryConfiguration.connections = max(1, settings.clients)
        var writeConfiguration = ClientConfiguration(address: address)
        writeConfiguration.connections = max(1, settings.writers)
        // A write waits behind the indexer when the unindexed tail is full: that is backpressure, not failure.
        writeConfiguration.timeoutMilliseconds = 600_000
        let admin = try await SextantClient.connect(ClientConfiguration(address: address))
        let writer = try await SextantClient.connect(writeConfiguration)
        let searcher = try await SextantClient.connect(queryConfiguration)
        let collectionName = "tenders"
        let collection = try await admin.createCollection(
            name: collectionName, dimension: reader.dimensions, metric: .cosine, ef: settings.ef,
            textIndex: settings.textIndex ? TextIndexOptions() : nil)
        let writeHandle = try await writer.getCollection(name: collectionName)
        let searchHandle = try await searcher.getCollection(name: collectionName)

        // Query clients: the day's latencies go to one histogram, swapped at each day's end.
        let latencies = LatencyRecorder()
        let stop = StopSignal()
        let clientTasks = (0..<settings.clients).map { number in
            Task.detached {
                await Self.queryLoop(searchHandle, queries, client: number, clients: settings.clients,
                                     perSecond: settings.queriesPerSecondPerClient, latencies: latencies, stop: stop)
            }
        }
        // Backups every quarter day (by default), taken from the running engine.
        let backups = BackupRecorder()
        let backupStore = try FolderStore(root: work + "/backups")
        let backupTask: Task<Void, Never>? = settings.backupsPerDay == 0 ? nil : Task.detached {
            await Self.backupLoop(store: backupStore, dataRoot: dataRoot, client: admin,
                                  intervalSeconds: settings.daySeconds / Double(settings.backupsPerDay), keep: settings.keepBackups,
                                  recorder: backups, stop: stop)
        }

        var feed = SoakFeed(plan: settings.plan)
        var days: [Day] = []
        let started = ContinuousClock.now
        var failure: (any Error)?
        do {
            for day in 1...settings.plan.days {
                let dayStart = ContinuousClock.now
                let expired = feed.expire(day: day)
                for chunk in stride(from: 0, to: expired.count, by: 5_000) {
                    let ids = expired[chunk..<min(chunk + 5_000, expired.count)].map(SoakFeed.id)
                    try await writeHandle.delete(ids: ids)
                }
                var added = 0
                var republished = 0
                var writeSeconds = 0.0
                for index in 0..<settings.plan.batchesPerDay {
                    let due = dayStart + .seconds(settings.daySeconds * Double(index) / Double(settings.plan.batchesPerDay))
                    if ContinuousClock.now < due { try await Task.sleep(until: due) }
                    let writes = feed.batch(day: day, index: index)
                    added += writes.lazy.filter { !$0.isUpdate }.count
                    republished += writes.lazy.filter(\.isUpdate).count
                    let writeStart = ContinuousClock.now
                    try await Self.write(writes, reader: reader, to: writeHandle, batchRecords: settings.batchRecords,
                                         writers: settings.writers)
                    writeSeconds += (ContinuousClock.now - writeStart).seconds
                }
                let dayEnd = dayStart + .seconds(settings.daySeconds)
                if ContinuousClock.now < dayEnd { try await Task.sleep(until: dayEnd) }
                let wall = (ContinuousClock.now - dayStart).seconds

                let measured = try await measure(day: day, feed: feed, reader: reader, queries: queries, admin: admin,
                                                 collection: collection, engine: engine, dataRoot: dataRoot,
                                                 backupRoot: work + "/backups", latencies: latencies, backups: backups)
                var record = measured
                record.wall_seconds = wall
                record.added = added
                record.republished = republished
                record.deleted = expired.count
                record.write_seconds = writeSeconds
                days.append(record)
                progress(String(format: "day %d: %d live (%d dead slots), disk %.2f GiB, RSS %.2f GiB (anon %.2f), p50 %.2f ms p99 %.2f ms, recall@10 %.4f, writes %.0f s of %.0f",
                                day, record.live_records, record.dead_slots, Double(record.disk_bytes) / Double(1 << 30),
                                Double(record.rss_bytes) / Double(1 << 30), Double(record.rss_anonymous_bytes) / Double(1 << 30),
                                record.p50_ms, record.p99_ms, record.recall_at_10, writeSeconds, wall))
                try Self.writeCSV(days, to: work + "/soak.csv")
            }
        } catch {
            failure = error
        }
        stop.set()
        for task in clientTasks { await task.value }
        await backupTask?.value
        await searcher.close()
        await writer.close()
        await admin.close()
        if let failure { throw failure }
        let wallSeconds = (ContinuousClock.now - started).seconds

        // The month's data must open again as it was left.
        let expected = feed.liveCount
        guard engine.stop() == 0 else { throw SoakError.engine("the engine did not stop cleanly:\n\(engine.log.suffix(4_000))") }
        let reopenStart = ContinuousClock.now
        engine = try startEngine(dataRoot: dataRoot, log: work + "/engine-reopen.log")
        let reopened = try await SextantClient.connect(ClientConfiguration(address: try EngineAddress(parsing: "127.0.0.1:\(engine.port)")))
        let reopenCount = try await reopened.getCollection(name: collectionName).count()
        let reopenMilliseconds = (ContinuousClock.now - reopenStart).seconds * 1_000
        await reopened.close()
        engine.stop()
        progress(String(format: "reopened in %.0f ms with %d records (expected %d)", reopenMilliseconds, reopenCount, expected))

        let csv = work + "/soak.csv"
        try Self.writeCSV(days, to: csv)
        let plot = SoakPlot.draw(csv: csv, png: work + "/soak.png", title: "sextant soak feed: \(settings.plan.days) days of \(settings.plan.recordsPerDay) records")
        let targets = Self.targets(days, steadyFromDay: settings.steadyFromDay, reopenMatches: reopenCount == expected)
        return Report(plan: settings.plan, day_seconds: settings.daySeconds, ef: settings.ef, clients: settings.clients,
                      queries_per_second_per_client: settings.queriesPerSecondPerClient, wall_seconds: wallSeconds, days: days,
                      targets: targets, reopen_milliseconds: reopenMilliseconds, reopen_count: reopenCount,
                      backup_failures: backups.failures, csv: csv, plot: plot)
    }

    private func startEngine(dataRoot: String, log: String) throws -> ChildProcess {
        try ChildProcess(label: "engine", executable: configuration.executable,
                         arguments: ["engine", "--data", dataRoot, "--listen", "127.0.0.1:0"] + configuration.engineArguments,
                         logPath: log, marker: "listening on [IPv4]")
    }

    private func measure(day: Int, feed: SoakFeed, reader: FvecsReader, queries: [[Float]], admin: SextantClient,
                         collection: CollectionHandle, engine: ChildProcess, dataRoot: String, backupRoot: String,
                         latencies: LatencyRecorder, backups: BackupRecorder) async throws -> Day {
        let latency = latencies.take()
        let backup = backups.take()
        guard let stats = try await admin.stats().first(where: { $0.name == collection.name }) else {
            throw SoakError.engine("the collection is gone")
        }
        let memory = ResidentMemory.of(pid: engine.pid)
        let disk = treeBytes(dataRoot + "/engine", excluding: [".backup"])

        // Recall@10 of the live set as it is now: the feed is between days, so nothing changes under the measurement.
        let chosen = Array(queries.prefix(configuration.recallQueries))
        let live = feed.rowIsLive
        let truth = try ExactNeighbours.search(chosen, in: reader, rows: 0..<feed.nextRow, k: 10) { live[$0] }
        var hits = 0
        var judged = 0
        for (index, vector) in chosen.enumerated() {
            let answer = try await collection.query(vectors: [vector], k: 10, include: [.distances])[0]
            let expected = Set(truth[index].prefix(10).map { Int32($0) })
            let found = answer.compactMap { result -> Int32? in
                guard result.id.hasPrefix("t"), let tender = Int32(result.id.dropFirst()) else { return nil }
                return feed.row(ofLive: tender).map(Int32.init)
            }
            hits += found.filter { expected.contains($0) }.count
            judged += min(10, expected.count)
        }
        // The exact ground truth is a matrix product over every live row on
        // the engine's own cores: query latencies taken meanwhile measure the
        // harness, not the engine, so they are dropped and the next day's
        // figures start from here (the clients keep querying throughout).
        // Their errors still count, on this day.
        let duringMeasurement = latencies.take()
        return Day(
            day: day, wall_seconds: 0, added: 0, republished: 0, deleted: 0, live_records: stats.liveRecords, live_expected: feed.liveCount,
            dead_slots: stats.deletedAwaitingReclaim, unindexed_records: stats.unindexedRecords, capacity_slots: stats.capacitySlots,
            disk_bytes: disk, wal_bytes: stats.walBytes, checkpoint_bytes: max(0, stats.diskBytes - stats.walBytes),
            rss_bytes: memory.totalBytes, rss_anonymous_bytes: memory.anonymousBytes, rss_file_bytes: memory.fileBytes,
            queries: latency.count, query_errors: latency.errors + duringMeasurement.errors, p50_ms: latency.p50Milliseconds, p99_ms: latency.p99Milliseconds,
            recall_at_10: judged == 0 ? 1 : Double(hits) / Double(judged), write_seconds: 0, backups: backup.count,
            backup_seconds: backup.seconds, backup_store_bytes: treeBytes(backupRoot))
    }

    /// The writes as upserts of `batchRecords`, `writers` at a time, vectors read from their rows.
    static func write(_ writes: [SoakFeed.Write], reader: FvecsReader, to collection: CollectionHandle, batchRecords: Int,
                      writers: Int) async throws {
        let chunks = stride(from: 0, to: writes.count, by: batchRecords).map { $0..<min($0 + batchRecords, writes.count) }
        let next = ChunkCounter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<max(1, writers) {
                group.addTask {
                    while true {
                        let index = next.next()
                        guard index < chunks.count else { return }
                        let slice = writes[chunks[index]]
                        let vectors = try slice.map { try reader.row(Int($0.row)) }
                        try await collection.upsert(ids: slice.map(\.id), vectors: vectors, documents: slice.map(\.document),
                                                    metadatas: slice.map(\.metadata))
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    static func queryLoop(_ collection: CollectionHandle, _ queries: [[Float]], client: Int, clients: Int, perSecond: Double,
                          latencies: LatencyRecorder, stop: StopSignal) async {
        var index = client
        let interval: Duration? = perSecond > 0 ? .seconds(1 / perSecond) : nil
        var next = ContinuousClock.now
        while !stop.isSet {
            if let interval {
                next += interval
                let now = ContinuousClock.now
                // Behind by more than a second (a stall): start the pace again rather than burst to catch up.
                if next < now - .seconds(1) { next = now }
                if next > now { try? await Task.sleep(until: next) }
            }
            let vector = queries[index % queries.count]
            index += max(1, clients)
            let start = ContinuousClock.now
            do {
                _ = try await collection.query(vectors: [vector], k: 10)
                latencies.record((ContinuousClock.now - start).seconds)
            } catch {
                if !stop.isSet { latencies.recordError() }
            }
        }
    }

    static func backupLoop(store: FolderStore, dataRoot: String, client: SextantClient, intervalSeconds: Double, keep: Int,
                           recorder: BackupRecorder, stop: StopSignal) async {
        var logger = Logger(label: "sextant.soak.backup")
        logger.logLevel = .warning
        let backup = BackupService(store: store, dataRoot: dataRoot, logger: logger)
        var due = ContinuousClock.now + .seconds(intervalSeconds / 2)
        while !stop.isSet {
            while ContinuousClock.now < due && !stop.isSet { try? await Task.sleep(for: .milliseconds(100)) }
            if stop.isSet { return }
            let start = ContinuousClock.now
            do {
                _ = try await backup.backup(client: client, keep: keep)
                recorder.record((ContinuousClock.now - start).seconds)
            } catch {
                if !stop.isSet {
                    logger.error("backup failed: \(error)")
                    recorder.recordFailure()
                }
            }
            due += .seconds(intervalSeconds)
            if due < ContinuousClock.now { due = ContinuousClock.now }
        }
    }

    static func targets(_ days: [Day], steadyFromDay: Int, reopenMatches: Bool) -> Targets {
        let from = min(max(1, steadyFromDay), days.count)
        let steady = days.filter { $0.day >= from }
        let base = days.first { $0.day == from }
        func ratio(_ value: (Day) -> Double) -> Double {
            guard let base, value(base) > 0 else { return 0 }
            return steady.map { value($0) / value(base) }.max() ?? 0
        }
        let disk = ratio { Double($0.disk_bytes) }
        let rss = ratio { Double($0.rss_bytes) }
        let p99 = ratio { $0.p99_ms }
        let recall = days.map(\.recall_at_10).min() ?? 0
        let counts = reopenMatches && days.allSatisfy { $0.live_records == $0.live_expected }
        return Targets(steady_from_day: from, disk_ratio_max: disk, rss_ratio_max: rss, p99_ratio_max: p99, recall_min: recall,
                       counts_match: counts,
                       met: counts && disk <= 1.2 && rss <= 1.2 && p99 <= 1.5 && recall >= 0.95 && days.allSatisfy { $0.query_errors == 0 })
    }

    static func writeCSV(_ days: [Day], to path: String) throws {
        var lines = ["day,wall_seconds,write_seconds,added,republished,deleted,live_records,live_expected,dead_slots,unindexed_records,capacity_slots,disk_bytes,wal_bytes,checkpoint_bytes,rss_bytes,rss_anonymous_bytes,rss_file_bytes,queries,query_errors,p50_ms,p99_ms,recall_at_10,backups,backup_seconds,backup_store_bytes"]
        for d in days {
            let fields: [String] = [
                "\(d.day)", String(format: "%.1f", d.wall_seconds), String(format: "%.1f", d.write_seconds), "\(d.added)",
                "\(d.republished)", "\(d.deleted)", "\(d.live_records)", "\(d.live_expected)", "\(d.dead_slots)", "\(d.unindexed_records)",
                "\(d.capacity_slots)", "\(d.disk_bytes)", "\(d.wal_bytes)", "\(d.checkpoint_bytes)", "\(d.rss_bytes)",
                "\(d.rss_anonymous_bytes)", "\(d.rss_file_bytes)", "\(d.queries)", "\(d.query_errors)", String(format: "%.3f", d.p50_ms),
                String(format: "%.3f", d.p99_ms), String(format: "%.4f", d.recall_at_10), "\(d.backups)", String(format: "%.1f", d.backup_seconds),
                "\(d.backup_store_bytes)",
            ]
            lines.append(fields.joined(separator: ","))
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    }
}

/// Latencies of the query clients since the last `take()`.
final class LatencyRecorder: Sendable {
    struct Summary {
        var count: Int
        var errors: Int
        var p50Milliseconds: Double
        var p99Milliseconds: Double
    }

    private struct State {
        var histogram = Histogram<UInt64>(highestTrackableValue: 120_000_000)
        var errors = 0
    }

    private let state = Mutex(State())

    func record(_ seconds: Double) {
        let micros = UInt64(max(1, min(seconds * 1e6, 120_000_000)))
        state.withLock { _ = $0.histogram.record(micros) }
    }

    func recordError() { state.withLock { $0.errors += 1 } }

    func take() -> Summary {
        let taken = state.withLock { state -> State in
            let current = state
            state = State()
            return current
        }
        let count = Int(taken.histogram.totalCount)
        return Summary(count: count, errors: taken.errors,
                       p50Milliseconds: count == 0 ? 0 : Double(taken.histogram.valueAtPercentile(50)) / 1_000,
                       p99Milliseconds: count == 0 ? 0 : Double(taken.histogram.valueAtPercentile(99)) / 1_000)
    }
}

/// Backups finished since the last `take()`.
final class BackupRecorder: Sendable {
    private let state = Mutex((count: 0, seconds: 0.0, failures: 0))

    func record(_ seconds: Double) { state.withLock { $0.count += 1; $0.seconds += seconds } }
    func recordFailure() { state.withLock { $0.failures += 1 } }
    var failures: Int { state.withLock { $0.failures } }

    func take() -> (count: Int, seconds: Double) {
        state.withLock { state in
            let taken = (state.count, state.seconds)
            state.count = 0
            state.seconds = 0
            return taken
        }
    }
}

final class ChunkCounter: Sendable {
    private let value = Atomic<Int>(0)
    func next() -> Int { value.add(1, ordering: .relaxed).oldValue }
}

final class StopSignal: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}
