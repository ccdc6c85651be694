import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import SextantClient
import SextantObjectStore
import SextantProtocol
import SextantReplication
import SextantTestSupport
import Synchronization
import Testing

private func batch(_ range: Range<Int>, tag: String = "v1") -> (ids: [String], vectors: [[Float]], documents: [String]) {
    (range.map { "t\($0)" }, randomVectors(count: range.count, dimensions: 16, seed: UInt64(range.lowerBound) &+ 11),
     range.map { "tender \($0) \(tag)" })
}

/// Polls `count` until it reaches `expected` or the deadline passes; returns the last count seen.
private func waitForCount(_ collection: CollectionHandle, _ expected: Int, timeoutSeconds: Double = 60) async throws -> Int {
    let deadline = Date().addingTimeInterval(timeoutSeconds)
    var seen = -1
    while Date() < deadline {
        seen = try await collection.count()
        if seen == expected { return seen }
        try await Task.sleep(for: .milliseconds(100))
    }
    return seen
}

/// Real engine processes and a real S3-compatible server (moto): a primary
/// shipping its log, a read replica following it through a kill -9, and a
/// primary whose volume is lost starting again from the bucket alone.
@Suite(.serialized) struct ReplicaProcessTests {
    @Test func aReplicaFollowsThePrimaryAndAPrimaryComesBackFromTheBucket() async throws {
        let directory = TemporaryDirectory("sextant-replica")
        defer { directory.remove() }
        let moto = try MotoServer(logPath: directory.file("moto.log"))
        defer { moto.stop() }
        let environment = moto.environment
        try await S3Store(bucket: "site", prefix: "", settings: S3Settings(environment: environment)).createBucket()
        let location = "s3://site/tenders"
        let ship = ["--ship-to", location, "--ship-interval-ms", "100", "--lease-seconds", "2"]
        let follow = ["--follow", location, "--ship-interval-ms", "100"]

        let primary = try EngineProcess(dataRoot: directory.file("primary"), extraArguments: ship, environment: environment)
        let client = try await SextantClient.connect(to: primary.address)
        let tenders = try await client.createCollection(name: "tenders", dimension: 16)
        for start in stride(from: 0, to: 2_000, by: 500) {
            let next = batch(start..<start + 500)
            try await tenders.upsert(ids: next.ids, vectors: next.vectors, documents: next.documents)
        }
        // A snapshot in the bucket: the replica starts from it and applies the log after it.
        let snapshot = try SextantBinary.run(["backup", "--data", directory.file("primary"), "--engine", primary.address, "--to", location],
                                             environment: environment)
        #expect(snapshot.0 == 0, "\(snapshot.2)")
        let more = batch(2_000..<2_500)
        try await tenders.upsert(ids: more.ids, vectors: more.vectors, documents: more.documents)
        try await tenders.delete(ids: (0..<100).map { "t\($0)" })

        var replica = try EngineProcess(dataRoot: directory.file("replica"), extraArguments: follow, environment: environment)
        var replicaClient = try await SextantClient.connect(to: replica.address)
        var copy = try await replicaClient.getCollection(name: "tenders")
        #expect(try await waitForCount(copy, 2_400) == 2_400)
        #expect(replica.log.contains("restored snapshot"), "\(replica.log.suffix(2_000))")
        let sample = try await copy.get(ids: ["t0", "t100", "t2499"], include: [.documents])
        #expect(sample.map(\.id).sorted() == ["t100", "t2499"])
        #expect(sample.first { $0.id == "t2499" }?.document == "tender 2499 v1")

        // A replica refuses writes, naming what it follows, and reports its lag.
        do {
            try await copy.upsert(ids: ["x"], vectors: [[Float](repeating: 0.5, count: 16)])
            Issue.record("a replica accepted a write")
        } catch let error as SextantError {
            #expect(error.code == .failedPrecondition)
            #expect(error.message.contains("read replica"), "\(error.message)")
        }
        // A read asking for a position the replica has not reached waits its bound, then sends the client elsewhere.
        var ahead = Sextant_V1_GetRequest()
        ahead.collection.id = copy.id
        ahead.ids = ["t1"]
        ahead.byIds = true
        ahead.minLsn = 1_000_000
        do {
            _ = try await replicaClient.call(.get, ahead, as: Sextant_V1_GetReply.self, idempotent: false)
            Issue.record("a replica answered a read it was behind")
        } catch let error as SextantError {
            #expect(error.code == .unavailable)
            #expect(error.message.contains("behind"), "\(error.message)")
        }
        let stats = try #require(try await replicaClient.stats().first)
        #expect(stats.isReplica)
        #expect(stats.lastLSN == (try await client.stats().first?.durableLSN))
        #expect(try #require(stats.replicaLagMilliseconds) < 60_000)
        #expect(try await client.stats().first?.isReplica == false)

        // Killed mid-stream, the replica resumes from its own folder.
        replica.kill9()
        await replicaClient.close()
        for start in stride(from: 2_500, to: 4_000, by: 300) {
            let next = batch(start..<start + 300, tag: "v2")
            try await tenders.upsert(ids: next.ids, vectors: next.vectors, documents: next.documents)
        }
        replica = try EngineProcess(dataRoot: directory.file("replica"), extraArguments: follow, environment: environment)
        replicaClient = try await SextantClient.connect(to: replica.address)
        copy = try await replicaClient.getCollection(name: "tenders")
        #expect(try await waitForCount(copy, 3_900) == 3_900)
        #expect(!replica.log.contains("restored snapshot"), "an existing folder is a cache, not restored again")

        // A second primary on the same location, while the first lives, refuses to start.
        let second = try SextantBinary.start(["engine", "--data", directory.file("second"), "--listen", "127.0.0.1:0"] + ship,
                                             logPath: directory.file("second.log"), environment: environment)
        #expect(second.waitForExit(timeoutSeconds: 60), "a second primary kept running")
        if second.isRunning { second.killHard() }
        #expect(second.exitStatus != 0)
        let secondLog = (try? String(contentsOfFile: directory.file("second.log"), encoding: .utf8)) ?? ""
        #expect(secondLog.contains("another primary"), "\(secondLog.suffix(2_000))")
        #expect(try await tenders.count() == 3_900, "the first primary still takes writes")

        // The primary's volume is lost after the replica saw every write (so all
        // were shipped): a new primary on an empty folder restores the snapshot and
        // the shipped log after it, and new writes follow the shipped ones.
        primary.kill9()
        await client.close()
        // It waits out the dead primary's lease (2 s here) before it restores anything.
        let newPrimary = try EngineProcess(dataRoot: directory.file("primary-new"), extraArguments: ship, environment: environment)
        defer { newPrimary.stop() }
        let client2 = try await SextantClient.connect(to: newPrimary.address)
        let restored = try await client2.getCollection(name: "tenders")
        #expect(try await restored.count() == 3_900)
        let last = try await restored.get(ids: ["t3999"], include: [.documents])
        #expect(last.first?.document == "tender 3999 v2")
        let after = batch(4_000..<4_100)
        try await restored.upsert(ids: after.ids, vectors: after.vectors, documents: after.documents)
        #expect(try await waitForCount(copy, 4_000) == 4_000)
        await client2.close()
        await replicaClient.close()
        #expect(replica.stop() == 0, "\(replica.log.suffix(2_000))")
        #expect(!replica.log.contains("failed"), "\(replica.log.suffix(2_000))")
    }
}

/// `--ack-after-ship`: an acknowledged write is already in object storage,
/// though the shipping interval is far longer than the write took.
@Suite(.serialized) struct AcknowledgeAfterShippingTests {
    @Test func anAcknowledgedWriteIsAlreadyShipped() async throws {
        let directory = TemporaryDirectory("sextant-ack-ship")
        defer { directory.remove() }
        let bucket = try FolderStore(root: directory.file("bucket"))
        let primary = try EngineProcess(dataRoot: directory.file("primary"),
                                        extraArguments: ["--ship-to", "file://" + directory.file("bucket"), "--ship-interval-ms", "60000",
                                                         "--ack-after-ship"])
        defer { primary.stop() }
        let client = try await SextantClient.connect(to: primary.address)
        let tenders = try await client.createCollection(name: "tenders", dimension: 16)
        for round in 0..<5 {
            let next = batch(round * 100..<round * 100 + 100)
            let started = ContinuousClock.now
            let result = try await tenders.upsert(ids: next.ids, vectors: next.vectors, documents: next.documents)
            #expect(ContinuousClock.now - started < .seconds(30), "waited for the write's own round, not the interval")
            let head = try await bucket.read(ShippedLog.headKey(tenders.id), maximumBytes: 4_096)
            let shipped = try JSONDecoder().decode(ShippedHead.self, from: Data(head))
            #expect(shipped.lastLSN >= result.lsn)
        }
        await client.close()
    }
}

/// A primary whose lease another took stops acknowledging writes (and says why).
@Suite(.serialized) struct FencedPrimaryTests {
    @Test func aPrimaryThatLostItsLeaseRefusesWrites() async throws {
        let directory = TemporaryDirectory("sextant-fenced")
        defer { directory.remove() }
        let bucket = try FolderStore(root: directory.file("bucket"))
        let primary = try EngineProcess(dataRoot: directory.file("primary"),
                                        extraArguments: ["--ship-to", "file://" + directory.file("bucket"), "--lease-seconds", "1.5"])
        defer { primary.stop() }
        let client = try await SextantClient.connect(to: primary.address)
        let tenders = try await client.createCollection(name: "tenders", dimension: 16)
        let first = batch(0..<10)
        try await tenders.upsert(ids: first.ids, vectors: first.vectors)

        // Another primary's lease replaces this one's (as after a takeover it did not see).
        let intruder = LeaseRecord(holder: "another", expiresAtSeconds: Date().timeIntervalSince1970 + 60,
                                   renewedAtSeconds: Date().timeIntervalSince1970)
        try await bucket.write(Array(try JSONEncoder().encode(intruder)), to: PrimaryLease.key)
        var refusal: SextantError?
        let deadline = Date().addingTimeInterval(30)
        var round = 0
        while refusal == nil && Date() < deadline {
            let next = batch(100 + round * 10..<110 + round * 10)
            do { try await tenders.upsert(ids: next.ids, vectors: next.vectors) } catch let error as SextantError { refusal = error }
            round += 1
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(refusal?.code == .unavailable)
        #expect(refusal?.message.contains("lease") == true, "\(String(describing: refusal))")
        #expect(primary.log.contains("lost the lease"), "\(primary.log.suffix(2_000))")
        #expect(try await tenders.count() >= 10, "reads go on")
        await client.close()
    }
}

/// The client with several endpoints: reads spread over read replicas, writes
/// to the primary; a primary killed mid-ingest costs no read, and once it is
/// back the replicas converge on exactly its acknowledged state.
@Suite(.serialized) struct ReplicaFailoverTests {
    @Test func endpointListsParse() throws {
        let configuration = try ClientConfiguration(endpoints: "127.0.0.1:7700, tls://replica-a:7700,unix:/run/b.sock")
        #expect(configuration.address == .tcp(host: "127.0.0.1", port: 7700))
        #expect(configuration.replicas.count == 2)
        #expect(throws: SextantError.self) { try ClientConfiguration(endpoints: " , ") }
    }

    @Test func readersLoseNothingWhenThePrimaryDiesAndReplicasConverge() async throws {
        let directory = TemporaryDirectory("sextant-failover")
        defer { directory.remove() }
        let location = "file://" + directory.file("bucket")
        let ship = ["--ship-to", location, "--ship-interval-ms", "200", "--lease-seconds", "2"]
        let follow = ["--follow", location, "--ship-interval-ms", "100"]
        var primary = try EngineProcess(dataRoot: directory.file("primary"), extraArguments: ship)
        let writerClient = try await SextantClient.connect(to: primary.address)
        let tenders = try await writerClient.createCollection(name: "tenders", dimension: 16)
        let first = batch(0..<1_000)
        try await tenders.upsert(ids: first.ids, vectors: first.vectors, documents: first.documents)
        let replicas = [try EngineProcess(dataRoot: directory.file("replica-a"), extraArguments: follow),
                        try EngineProcess(dataRoot: directory.file("replica-b"), extraArguments: follow)]
        // Readers that wrote nothing see what a replica has applied: start them once both hold the first batch.
        for replica in replicas {
            let client = try await SextantClient.connect(to: replica.address)
            let deadline = Date().addingTimeInterval(60)
            while (try? await client.getCollection(name: "tenders").count()) != 1_000 && Date() < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
            await client.close()
        }
        let endpoints = ([primary] + replicas).map(\.address).joined(separator: ",")
        let readers = try await SextantClient.connect(try ClientConfiguration(endpoints: endpoints))
        let shared = try await readers.getCollection(name: "tenders")

        // Eight readers by id and by vector, all through the multi-endpoint client.
        let stop = ManagedFlag()
        let reading = (0..<8).map { number in
            Task { () -> (reads: Int, failures: [String]) in
                var reads = 0
                var failures: [String] = []
                var generator = SeededGenerator(seed: UInt64(number) + 1)
                while !stop.isSet {
                    let id = Int.random(in: 0..<1_000, using: &generator)
                    do {
                        if number % 2 == 0 {
                            let found = try await shared.get(ids: ["t\(id)"], include: [.documents])
                            if found.first?.document != "tender \(id) v1" { failures.append("t\(id) read as \(found.first?.document ?? "nothing")") }
                        } else {
                            _ = try await shared.query(vectors: [first.vectors[id]], k: 3)
                        }
                        reads += 1
                    } catch {
                        failures.append("\(error)")
                    }
                }
                return (reads, failures)
            }
        }
        // The writer ingests; the primary is killed in the middle of it.
        let writing = Task { () -> [Int] in
            var acknowledged: [Int] = []
            var start = 1_000
            while start < 20_000 {
                let next = batch(start..<start + 200, tag: "v2")
                do { try await tenders.upsert(ids: next.ids, vectors: next.vectors, documents: next.documents) } catch { break }
                acknowledged.append(start)
                start += 200
            }
            return acknowledged
        }
        try await Task.sleep(for: .milliseconds(1_500))
        primary.kill9()
        let acknowledged = await writing.value
        await writerClient.close()
        try await Task.sleep(for: .milliseconds(1_500))  // reads go on with the primary dead

        // The primary comes back on its own folder, waits out its old lease, ships what it had not.
        primary = try EngineProcess(dataRoot: directory.file("primary"), extraArguments: ship)
        defer { primary.stop() }
        try await Task.sleep(for: .milliseconds(500))
        stop.set()
        var totalReads = 0
        for task in reading {
            let (reads, failures) = await task.value
            totalReads += reads
            #expect(failures.isEmpty, "\(failures.prefix(5))")
        }
        #expect(totalReads > 100)

        let primaryClient = try await SextantClient.connect(to: primary.address)
        let authority = try await primaryClient.getCollection(name: "tenders")
        let expected = try await authority.count()
        #expect(expected >= 1_000 + acknowledged.count * 200, "every acknowledged write survives the kill")
        for replica in replicas {
            let client = try await SextantClient.connect(to: replica.address)
            let copy = try await client.getCollection(name: "tenders")
            let deadline = Date().addingTimeInterval(60)
            while try await copy.count() != expected && Date() < deadline { try await Task.sleep(for: .milliseconds(100)) }
            #expect(try await copy.count() == expected)
            let sample = (0..<40).map { "t\($0 * 499 % (1_000 + acknowledged.count * 200))" }
            let mine = try await authority.get(ids: sample, include: [.documents, .metadatas])
            let theirs = try await copy.get(ids: sample, include: [.documents, .metadatas])
            #expect(mine == theirs)
            await client.close()
        }

        // Read your writes through the replicas: a write, then a read at once.
        let writerAgain = try await SextantClient.connect(try ClientConfiguration(endpoints: ([primary] + replicas).map(\.address).joined(separator: ",")))
        let handle = try await writerAgain.getCollection(name: "tenders")
        for round in 0..<5 {
            let fresh = batch(30_000 + round * 10..<30_000 + round * 10 + 10, tag: "fresh")
            try await handle.upsert(ids: fresh.ids, vectors: fresh.vectors, documents: fresh.documents)
            let seen = try await handle.get(ids: fresh.ids, include: [.documents])
            #expect(seen.count == 10 && seen.allSatisfy { $0.document?.hasSuffix("fresh") == true })
        }
        await writerAgain.close()

        // The search API on the same list reports each engine's position and each replica's lag.
        let port = freePort()
        let api = try SextantBinary.start(["api", "--data", directory.file("api"), "--listen", "127.0.0.1:\(port)", "--engine",
                                           ([primary] + replicas).map(\.address).joined(separator: ",")],
                                          logPath: directory.file("api.log"))
        defer { api.killHard() }
        var metrics = ""
        let metricsURL = try #require(URL(string: "http://127.0.0.1:\(port)/metrics"))
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && !metrics.contains("sextant_replica_lag_seconds{") {
            if let (data, _) = try? await URLSession.shared.data(from: metricsURL) {
                metrics = String(decoding: data, as: UTF8.self)
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(metrics.contains("sextant_engine_up{engine=\"\(primary.address)\",role=\"primary\"} 1"), "\(metrics.suffix(1_500))")
        for replica in replicas {
            #expect(metrics.contains("sextant_replica_lag_seconds{engine=\"\(replica.address)\",role=\"replica\",collection=\"tenders\"}"))
        }
        await primaryClient.close()
        await readers.close()
        for replica in replicas { #expect(replica.stop() == 0) }
    }
}

/// A flag tasks poll.
final class ManagedFlag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}
