import Foundation
import Logging
import SextantBackup
import SextantClient
import SextantObjectStore
import SextantSupport
import Synchronization

/// How far behind a read replica is: a primary (`sextant engine --ship-to`)
/// and a replica (`--follow`) as their own processes on one location; each
/// write's records are acknowledged by the primary, then the replica is asked
/// for the batch's last record every 2 ms until it answers. The lag is from the
/// acknowledgement to that answer: shipping, the object store, the follower's
/// next round and its apply.
public struct ReplicaLag: Sendable {
    public struct Configuration: Sendable {
        public var executable: String
        public var workDirectory: String
        /// s3://, gs:// or file:/// location; nil: a folder under the work directory.
        public var location: String?
        public var writes = 200
        public var recordsPerWrite = 100
        public var dimensions = 384
        public var pauseMilliseconds = 50
        public var shipIntervalMilliseconds = 1_000
        /// Records written and snapshotted before the replica starts: its start
        /// (restore, catch-up, open) is timed.
        public var preloadRecords = 0
        /// The primary acknowledges a write only once it is in object storage.
        public var acknowledgeAfterShipping = false
        /// Writers upserting 1,000-record batches at full speed while the lag is measured.
        public var floodWriters = 0
        /// Seconds of closed-loop queries (4 clients, k 10) on the primary, then
        /// on the replica, twice each, once the replica caught up (0: none).
        public var querySeconds = 0.0

        public init(executable: String, workDirectory: String) {
            self.executable = executable
            self.workDirectory = workDirectory
        }
    }

    public struct Report: Codable, Sendable {
        public var location: String
        public var writes: Int
        public var records_per_write: Int
        public var ship_interval_ms: Int
        public var write_p50_ms: Double
        public var lag_p50_ms: Double
        public var lag_p90_ms: Double
        public var lag_p99_ms: Double
        public var lag_max_ms: Double
        public var replica_records: Int
        public var ack_after_ship: Bool
        public var preload_records: Int
        /// From the replica's launch to its listening, caught up (restore of the snapshot included).
        public var replica_start_seconds: Double
        public var flood_writers: Int
        public var flooded_records: Int
        /// Queries per second on each engine, rounds alternating, and the replica's median over the primary's.
        public var primary_queries_per_second: [Double]
        public var replica_queries_per_second: [Double]
        public var replica_query_ratio: Double
    }

    public let configuration: Configuration
    public init(configuration: Configuration) { self.configuration = configuration }

    public func run(progress: @Sendable (String) -> Void = { _ in }) async throws -> Report {
        let settings = configuration
        guard settings.writes > 0, settings.recordsPerWrite > 0, (1...4_096).contains(settings.dimensions) else {
            throw SoakError.invalid("writes, records per write and dimensions must be positive (dimensions at most 4096)")
        }
        let work = settings.workDirectory
        try? FileManager.default.removeItem(atPath: work)
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let location = settings.location ?? "file://" + work + "/bucket"
        let interval = ["--ship-interval-ms", "\(settings.shipIntervalMilliseconds)"]
        let primary = try ChildProcess(label: "primary", executable: settings.executable,
                                       arguments: ["engine", "--data", work + "/primary", "--listen", "127.0.0.1:0", "--ship-to", location] + interval
                                           + (settings.acknowledgeAfterShipping ? ["--ack-after-ship"] : []),
                                       logPath: work + "/primary.log", marker: "listening on [IPv4]")
        defer { _ = primary.stop() }
        let writer = try await SextantClient.connect(ClientConfiguration(address: try EngineAddress(parsing: "127.0.0.1:\(primary.port)")))
        let collection = try await writer.createCollection(name: "lag", dimension: settings.dimensions)
        var generator = SplitMix64(seed: 7)
        if settings.preloadRecords > 0 {
            for start in stride(from: 0, to: settings.preloadRecords, by: 1_000) {
                let ids = (start..<min(start + 1_000, settings.preloadRecords)).map { "p\($0)" }
                let vectors = ids.map { _ in (0..<settings.dimensions).map { _ in Float(generator.unit() * 2 - 1) } }
                try await collection.upsert(ids: ids, vectors: vectors, documents: ids.map { "preloaded record \($0)" })
            }
            let service = BackupService(store: try ObjectStoreLocation.open(location, settings: S3Settings()), dataRoot: work + "/primary",
                                        logger: Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() })
            _ = try await service.backup(client: writer)
            progress("\(settings.preloadRecords) records written and snapshotted")
        }
        let replicaLaunched = ContinuousClock.now
        let replica = try ChildProcess(label: "replica", executable: settings.executable,
                                       arguments: ["engine", "--data", work + "/replica", "--listen", "127.0.0.1:0", "--follow", location] + interval,
                                       logPath: work + "/replica.log", marker: "listening on [IPv4]")
        defer { _ = replica.stop() }
        let replicaStartSeconds = (ContinuousClock.now - replicaLaunched).seconds
        let reader = try await SextantClient.connect(ClientConfiguration(address: try EngineAddress(parsing: "127.0.0.1:\(replica.port)")))
        defer { Task { await reader.close(); await writer.close() } }
        // The replica creates the collection once the primary's description arrives.
        var copy: CollectionHandle?
        let found = ContinuousClock.now + .seconds(60)
        while copy == nil && ContinuousClock.now < found {
            copy = try? await reader.getCollection(name: "lag")
            if copy == nil { try await Task.sleep(for: .milliseconds(20)) }
        }
        guard let copy else { throw SoakError.engine("the replica never created the collection:\n\(replica.log.suffix(2_000))") }

        let flooded = Counter()
        let dimensions = settings.dimensions
        let flooding = (0..<settings.floodWriters).map { number in
            Task {
                var random = SplitMix64(seed: 1_000 + UInt64(number))
                var batch = 0
                while !Task.isCancelled {
                    let ids = (0..<1_000).map { "f\(number)-\(batch)-\($0)" }
                    let vectors = ids.map { _ in (0..<dimensions).map { _ in Float(random.unit() * 2 - 1) } }
                    do { try await collection.upsert(ids: ids, vectors: vectors) } catch { break }
                    flooded.add(ids.count)
                    batch += 1
                }
            }
        }
        var lags: [Double] = []
        var writeTimes: [Double] = []
        for write in 0..<settings.writes {
            let ids = (0..<settings.recordsPerWrite).map { "w\(write)-\($0)" }
            let vectors = ids.map { _ in (0..<settings.dimensions).map { _ in Float(generator.unit() * 2 - 1) } }
            let started = ContinuousClock.now
            try await collection.upsert(ids: ids, vectors: vectors)
            let acknowledged = ContinuousClock.now
            writeTimes.append((acknowledged - started).milliseconds)
            let last = ids[ids.count - 1]
            let deadline = acknowledged + .seconds(60)
            while try await copy.get(ids: [last], include: []).isEmpty {
                guard ContinuousClock.now < deadline else { throw SoakError.engine("write \(write) never reached the replica") }
                try await Task.sleep(for: .milliseconds(2))
            }
            lags.append((ContinuousClock.now - acknowledged).milliseconds)
            if write % 50 == 49 { progress("\(write + 1) writes, lag p50 \(String(format: "%.0f", Self.percentile(lags, 50))) ms") }
            try await Task.sleep(for: .milliseconds(settings.pauseMilliseconds))
        }
        for task in flooding { task.cancel() }
        for task in flooding { await task.value }

        var primaryRates: [Double] = []
        var replicaRates: [Double] = []
        if settings.querySeconds > 0 {
            let expected = try await collection.count()
            let caughtUp = ContinuousClock.now + .seconds(120)
            while try await copy.count() != expected {
                guard ContinuousClock.now < caughtUp else { throw SoakError.engine("the replica did not catch up with \(expected) records") }
                try await Task.sleep(for: .milliseconds(50))
            }
            let queries = (0..<256).map { _ in (0..<settings.dimensions).map { _ in Float(generator.unit() * 2 - 1) } }
            for _ in 0..<2 {
                primaryRates.append(try await Self.queryRate(collection, queries, seconds: settings.querySeconds))
                replicaRates.append(try await Self.queryRate(copy, queries, seconds: settings.querySeconds))
            }
            progress("queries/s primary \(primaryRates.map { Int($0) }), replica \(replicaRates.map { Int($0) })")
        }
        let ratio = primaryRates.isEmpty ? 0 : Self.percentile(replicaRates, 50) / max(1, Self.percentile(primaryRates, 50))
        return Report(location: location.hasPrefix("file://") ? "folder" : location, writes: settings.writes,
                      records_per_write: settings.recordsPerWrite, ship_interval_ms: settings.shipIntervalMilliseconds,
                      write_p50_ms: Self.percentile(writeTimes, 50), lag_p50_ms: Self.percentile(lags, 50),
                      lag_p90_ms: Self.percentile(lags, 90), lag_p99_ms: Self.percentile(lags, 99),
                      lag_max_ms: lags.max() ?? 0, replica_records: try await copy.count(), ack_after_ship: settings.acknowledgeAfterShipping,
                      preload_records: settings.preloadRecords, replica_start_seconds: replicaStartSeconds,
                      flood_writers: settings.floodWriters, flooded_records: flooded.value, primary_queries_per_second: primaryRates,
                      replica_queries_per_second: replicaRates, replica_query_ratio: ratio)
    }

    /// Closed-loop queries from 4 clients for `seconds`: answers per second.
    static func queryRate(_ collection: CollectionHandle, _ queries: [[Float]], seconds: Double) async throws -> Double {
        let until = ContinuousClock.now + .milliseconds(Int(seconds * 1_000))
        let started = ContinuousClock.now
        let answered = try await withThrowingTaskGroup(of: Int.self) { group in
            for client in 0..<4 {
                group.addTask {
                    var count = 0
                    var index = client
                    while ContinuousClock.now < until {
                        _ = try await collection.query(vectors: [queries[index % queries.count]], k: 10, include: [.distances])
                        count += 1
                        index += 4
                    }
                    return count
                }
            }
            return try await group.reduce(0, +)
        }
        return Double(answered) / (ContinuousClock.now - started).seconds
    }

    static func percentile(_ values: [Double], _ percent: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let rank = Int((percent / 100 * Double(sorted.count - 1)).rounded())
        return sorted[min(sorted.count - 1, max(0, rank))]
    }
}

/// A count several tasks add to.
final class Counter: Sendable {
    private let total = Mutex(0)
    func add(_ amount: Int) { total.withLock { $0 += amount } }
    var value: Int { total.withLock { $0 } }
}
