import Foundation
import SextantClient
import SextantObjectStore
import SextantTestSupport
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
        let moto = try BackgroundServer(python: ["-m", "moto.server", "-H", "127.0.0.1", "-p", "{port}"],
                                        logPath: directory.file("moto.log"))
        defer { moto.stop() }
        let environment = ["AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret", "AWS_REGION": "us-east-1",
                           "AWS_ENDPOINT_URL": moto.url]
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
