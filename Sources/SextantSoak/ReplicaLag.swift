import Foundation
import SextantClient
import SextantSupport

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
                                       arguments: ["engine", "--data", work + "/primary", "--listen", "127.0.0.1:0", "--ship-to", location] + interval,
                                       logPath: work + "/primary.log", marker: "listening on [IPv4]")
        defer { _ = primary.stop() }
        let writer = try await SextantClient.connect(ClientConfiguration(address: try EngineAddress(parsing: "127.0.0.1:\(primary.port)")))
        let collection = try await writer.createCollection(name: "lag", dimension: settings.dimensions)
        let replica = try ChildProcess(label: "replica", executable: settings.executable,
                                       arguments: ["engine", "--data", work + "/replica", "--listen", "127.0.0.1:0", "--follow", location] + interval,
                                       logPath: work + "/replica.log", marker: "listening on [IPv4]")
        defer { _ = replica.stop() }
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

        var generator = SplitMix64(seed: 7)
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
        return Report(location: location.hasPrefix("file://") ? "folder" : location, writes: settings.writes,
                      records_per_write: settings.recordsPerWrite, ship_interval_ms: settings.shipIntervalMilliseconds,
                      write_p50_ms: Self.percentile(writeTimes, 50), lag_p50_ms: Self.percentile(lags, 50),
                      lag_p90_ms: Self.percentile(lags, 90), lag_p99_ms: Self.percentile(lags, 99),
                      lag_max_ms: lags.max() ?? 0, replica_records: try await copy.count())
    }

    static func percentile(_ values: [Double], _ percent: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let rank = Int((percent / 100 * Double(sorted.count - 1)).rounded())
        return sorted[min(sorted.count - 1, max(0, rank))]
    }
}
