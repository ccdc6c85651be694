import Foundation
import Logging
import SextantObjectStore
import SextantPayload
import SextantReplication
import SextantStorage
import SextantTestSupport
import Testing

private func records(_ range: Range<Int>, dimensions: Int = 8, seed: UInt64 = 1, tag: String = "v1") -> [RecordInput] {
    let vectors = randomVectors(count: range.count, dimensions: dimensions, seed: seed &+ UInt64(range.lowerBound))
    return zip(range, vectors).map { index, vector in
        RecordInput(id: "r\(index)", vector: vector, document: "record \(index) \(tag)",
                    metadata: ["index": .int(Int64(index)), "tag": .string(tag)])
    }
}

/// Every record of `collection`, by id, with its vector.
private func contents(_ collection: Collection) throws -> [String: RecordView] {
    Dictionary(uniqueKeysWithValues: try collection.get(include: [.documents, .metadatas, .vectors]).map { ($0.id, $0) })
}

private let quiet = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

/// A primary and a follower as two storage engines in this process, with a
/// folder as the bucket: the shipped log must make the follower hold exactly
/// the primary's records, through checkpoints, restarts and deletions.
@Suite struct ShippedLogTests {
    @Test func aFollowerHoldsExactlyThePrimarysRecords() async throws {
        let directory = TemporaryDirectory("sextant-replication")
        defer { directory.remove() }
        let store = try FolderStore(root: directory.file("bucket"))
        let primary = try StorageEngine(directory: directory.file("primary"))
        defer { primary.indexer.stop() }
        let shipper = LogShipper(storage: primary, store: store, logger: quiet)

        let (collection, _) = try await primary.create(CollectionConfiguration(
            name: "tenders", dimension: 8, metric: .l2, textIndex: TextIndexSettings()))
        try await collection.write(.upsert(records(0..<1_500)))
        #expect(try await shipper.shipOnce() == 1)

        var follower = try StorageEngine(directory: directory.file("follower"))
        var following = LogFollower(storage: follower, store: store, logger: quiet)
        #expect(try await following.followOnce() == 1)
        var copy = try #require(follower.collection(id: collection.id))
        #expect(copy.name == "tenders")
        #expect(try contents(copy) == contents(collection))

        // Re-publications, deletions, a metadata change and a payload index; then a
        // checkpoint before anything of it was shipped: the WAL segments it would
        // discard still hold unshipped entries and must be kept for the shipper.
        try await collection.write(.upsert(records(1_000..<2_000, seed: 7, tag: "v2")))
        try await collection.write(.delete(ids: (0..<300).map { "r\($0)" }))
        try await collection.modify(name: nil, metadata: ["owner": .string("procurement")])
        try await collection.setPayloadIndexes(["tag"])
        try await collection.checkpoint()
        try await collection.write(.upsert(records(2_000..<2_200, seed: 9)))
        let shipped = try await shipper.shipOnce()
        #expect(shipped == 5)
        #expect(try await following.followOnce() == 5)
        #expect(copy.lastLSN == collection.lastLSN)
        #expect(copy.count == collection.count)
        #expect(try contents(copy) == contents(collection))
        #expect(copy.configuration.metadata == collection.configuration.metadata)
        #expect(copy.configuration.payloadIndexes == ["tag"])
        // The follower answers as the primary does: filtered gets, lexical search, nearest neighbours.
        let filter = WhereFilter.compare(key: "tag", op: .eq, value: .string("v2"))
        #expect(Set(try copy.get(filter: filter).map(\.id)) == Set(try collection.get(filter: filter).map(\.id)))
        let lexical = try copy.search(mode: .lexical, vector: nil, text: "record 2100", k: 3)
        #expect(lexical.first?.id == "r2100")
        let probe = try #require(try collection.get(ids: ["r1500"], include: [.vectors]).first?.vector)
        #expect(try copy.query([probe], k: 1).first?.first?.id == "r1500")

        // A follower that stops and reopens resumes after its last entry.
        try await follower.close()
        follower = try StorageEngine(directory: directory.file("follower"))
        following = LogFollower(storage: follower, store: store, logger: quiet)
        copy = try #require(follower.collection(id: collection.id))
        #expect(try await following.followOnce() == 0)
        try await collection.write(.upsert(records(3_000..<3_100)))
        try await shipper.shipOnce()
        #expect(try await following.followOnce() == 1)
        #expect(try contents(copy) == contents(collection))
        #expect(copy.replicaLagMilliseconds != nil)

        // A collection created after the follower started appears; a deleted one goes.
        let (second, _) = try await primary.create(CollectionConfiguration(name: "notes", dimension: 0))
        try await second.write(.add(records(0..<10, dimensions: 4)))
        try await shipper.shipOnce()
        try await following.discover()
        try await following.followOnce()
        let secondCopy = try #require(follower.collection(named: "notes"))
        #expect(secondCopy.dimension == 4)
        #expect(try contents(secondCopy) == contents(second))
        try await primary.delete(named: "notes")
        try await shipper.shipOnce()
        try await following.discover()
        #expect(follower.collection(named: "notes") == nil)
        try await follower.close()
    }

    /// A replica's queries would have it index a field by itself, taking an LSN
    /// that belongs to its primary's next entry: it must not, nor take writes.
    @Test func aFollowerBuildsNoIndexOfItsOwnAndTakesNoWrite() async throws {
        let directory = TemporaryDirectory("sextant-replication")
        defer { directory.remove() }
        let store = try FolderStore(root: directory.file("bucket"))
        let primary = try StorageEngine(directory: directory.file("primary"))
        defer { primary.indexer.stop() }
        let shipper = LogShipper(storage: primary, store: store, logger: quiet)
        let (collection, _) = try await primary.create(CollectionConfiguration(name: "feed", dimension: 8))
        try await collection.write(.upsert(records(0..<200)))
        try await shipper.shipOnce()
        let follower = try StorageEngine(directory: directory.file("follower"), automaticIndexRecords: 1)
        defer { follower.indexer.stop() }
        let following = LogFollower(storage: follower, store: store, logger: quiet)
        try await following.followOnce()
        let copy = try #require(follower.collection(id: collection.id))
        let filter = WhereFilter.compare(key: "index", op: .gt, value: .int(10))
        for _ in 0..<(2 * StorageLimits.automaticPayloadIndexFilterUses) { _ = try copy.get(filter: filter) }
        try await Task.sleep(for: .milliseconds(500))  // an automatic build runs in the background
        #expect(copy.configuration.payloadIndexes.isEmpty)
        await #expect(throws: StorageError.self) { try await copy.write(.upsert(records(0..<1))) }
        await #expect(throws: StorageError.self) { try await copy.setPayloadIndexes(["index"]) }
        try await collection.write(.upsert(records(200..<300)))
        try await shipper.shipOnce()
        #expect(try await following.followOnce() == 1)
        #expect(copy.lastLSN == collection.lastLSN)
        #expect(try contents(copy) == contents(collection))
    }

    /// `--ack-after-ship`: a write waits for its shipping round; one that cannot
    /// be shipped within the bound fails UNAVAILABLE instead of waiting forever.
    @Test func aWriteWaitsForItsShippingAndGivesUpAtTheBound() async throws {
        let directory = TemporaryDirectory("sextant-replication")
        defer { directory.remove() }
        let store = try FolderStore(root: directory.file("bucket"))
        let primary = try StorageEngine(directory: directory.file("primary"))
        defer { primary.indexer.stop() }
        let (collection, _) = try await primary.create(CollectionConfiguration(name: "feed", dimension: 8))
        let lsn = try await collection.write(.upsert(records(0..<10))).lsn

        // A shipper that may not ship (its lease is gone): the write is given up on.
        let stuck = ShippedPositions(location: store.displayName, timeoutMilliseconds: 200)
        let fenced = LogShipper(storage: primary, store: store, logger: quiet, mayShip: { false })
        let stuckRounds = Task { await fenced.run(intervalMilliseconds: 50, positions: stuck) }
        await #expect(throws: StorageError.self) { try await stuck.waitShipped(collection, lsn) }
        stuckRounds.cancel()
        await stuckRounds.value

        // A working one releases the write after its round, long before the interval.
        let positions = ShippedPositions(location: store.displayName, timeoutMilliseconds: 30_000)
        let shipper = LogShipper(storage: primary, store: store, logger: quiet)
        let rounds = Task { await shipper.run(intervalMilliseconds: 60_000, positions: positions) }
        let started = ContinuousClock.now
        try await positions.waitShipped(collection, lsn)
        #expect(ContinuousClock.now - started < .seconds(30))
        let head = try await store.read(ShippedLog.headKey(collection.id), maximumBytes: 4_096)
        #expect(try JSONDecoder().decode(ShippedHead.self, from: Data(head)).lastLSN >= lsn)
        rounds.cancel()
        await rounds.value
    }

    @Test func aTornPieceIsRefusedAndNothingOfItIsApplied() async throws {
        let directory = TemporaryDirectory("sextant-replication")
        defer { directory.remove() }
        let store = try FolderStore(root: directory.file("bucket"))
        let primary = try StorageEngine(directory: directory.file("primary"))
        defer { primary.indexer.stop() }
        let shipper = LogShipper(storage: primary, store: store, logger: quiet)
        let (collection, _) = try await primary.create(CollectionConfiguration(name: "feed", dimension: 8))
        try await collection.write(.upsert(records(0..<100)))
        try await shipper.shipOnce()
        try await collection.write(.upsert(records(100..<200)))
        try await collection.write(.upsert(records(200..<300)))
        try await shipper.shipOnce()

        // The second piece (LSNs 2-3) loses a byte in its last entry.
        let key = ShippedLog.pieceKey(collection.id, firstLSN: 2)
        var bytes = try await store.read(key, maximumBytes: 1 << 24)
        bytes[bytes.count - 5] ^= 0xFF
        try await store.write(bytes, to: key)

        let follower = try StorageEngine(directory: directory.file("follower"))
        defer { follower.indexer.stop() }
        let following = LogFollower(storage: follower, store: store, logger: quiet)
        await #expect(throws: StorageError.self) { try await following.followOnce() }
        let copy = try #require(follower.collection(id: collection.id))
        #expect(copy.lastLSN == 1)  // the first piece; nothing of the torn one
        #expect(copy.count == 100)
    }

    @Test func piecesEverySnapshotHoldsAreCollected() async throws {
        let directory = TemporaryDirectory("sextant-replication")
        defer { directory.remove() }
        let store = try FolderStore(root: directory.file("bucket"))
        let primary = try StorageEngine(directory: directory.file("primary"))
        defer { primary.indexer.stop() }
        let (collection, _) = try await primary.create(CollectionConfiguration(name: "feed", dimension: 8))
        let id = collection.id
        let shipper = LogShipper(storage: primary, store: store, logger: quiet, retainedSnapshotLSNs: { [id: 4] })
        for round in 0..<3 {  // pieces starting at 1, 3, 5
            try await collection.write(.upsert(records(round * 20..<round * 20 + 10)))
            try await collection.write(.upsert(records(round * 20 + 10..<round * 20 + 20)))
            try await shipper.shipOnce()
        }
        try await shipper.collect()
        let left = try await store.list(prefix: ShippedLog.piecesPrefix(id)).compactMap { ShippedLog.firstLSN(ofPieceKey: $0.key) }
        // 1-2 is held by the snapshot at 4; 3-4 ends at it; 5-6 is still needed.
        #expect(left == [5])
    }
}
