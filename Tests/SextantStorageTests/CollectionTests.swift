import Foundation
import SextantPayload
import SextantStorage
import SextantTestSupport
import Testing

func makeRecords(_ count: Int, dimensions: Int = 8, seed: UInt64 = 1, prefix: String = "r") -> [RecordInput] {
    randomVectors(count: count, dimensions: dimensions, seed: seed).enumerated().map { index, vector in
        RecordInput(
            id: "\(prefix)\(index)", vector: vector, document: "document \(index) of \(prefix)",
            metadata: ["index": .int(Int64(index)), "parity": .string(index % 2 == 0 ? "even" : "odd"),
                       "score": .double(Double(index) / 10), "flag": .bool(index % 3 == 0)])
    }
}

func withEngine<T>(_ directory: TemporaryDirectory, io: DurableIO = .shared, _ body: (StorageEngine) async throws -> T) async throws -> T {
    let engine = try StorageEngine(directory: directory.path, io: io)
    defer { engine.indexer.stop() }
    return try await body(engine)
}

/// Waits until the background indexer has linked everything written.
func waitIndexed(_ collection: Collection, timeoutSeconds: Double = 60) async throws {
    let deadline = Date().addingTimeInterval(timeoutSeconds)
    while collection.stats().unindexedRecords > 0 {
        guard Date() < deadline else { Issue.record("indexer did not catch up"); return }
        try await Task.sleep(for: .milliseconds(10))
    }
}

@Suite struct CollectionTests {
    @Test func writeSemanticsAndErrors() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        try await withEngine(directory) { engine in
            let (collection, created) = try await engine.create(CollectionConfiguration(name: "docs", dimension: 8, metric: .l2))
            #expect(created)
            let records = makeRecords(100)
            #expect(try await collection.write(.add(records)).affected == 100)
            #expect(collection.count == 100)

            // add refuses an existing id, and applies nothing of the batch
            let mixed = [RecordInput(id: "new-1", vector: records[0].vector), records[5]]
            await #expect(throws: StorageError.alreadyExists("record 'r5' already exists")) {
                try await collection.write(.add(mixed))
            }
            #expect(try collection.get(ids: ["new-1"]).isEmpty)

            // validation: dimension, NaN, duplicates, empty and oversize ids, missing vector
            await #expect(throws: StorageError.self) { try await collection.write(.add([RecordInput(id: "x", vector: [1, 2])])) }
            await #expect(throws: StorageError.self) {
                try await collection.write(.add([RecordInput(id: "x", vector: [1, .nan, 0, 0, 0, 0, 0, 0])]))
            }
            await #expect(throws: StorageError.invalidArgument("id 'd' appears twice in the batch")) {
                try await collection.write(.upsert([records[0], RecordInput(id: "d", vector: records[1].vector), RecordInput(id: "d", vector: records[2].vector)]))
            }
            await #expect(throws: StorageError.self) { try await collection.write(.add([RecordInput(id: "", vector: records[0].vector)])) }
            await #expect(throws: StorageError.self) {
                try await collection.write(.add([RecordInput(id: String(repeating: "x", count: 2_000), vector: records[0].vector)]))
            }
            await #expect(throws: StorageError.self) { try await collection.write(.add([RecordInput(id: "novector")])) }
            #expect(collection.count == 100)

            // upsert replaces whole records; update changes only the given fields
            try await collection.write(.upsert([RecordInput(id: "r1", vector: records[1].vector, document: "replaced")]))
            let replaced = try collection.get(ids: ["r1"])
            #expect(replaced.first?.document == "replaced")
            #expect(replaced.first?.metadata == [:])
            try await collection.write(.update([RecordInput(id: "r2", metadata: ["tag": .string("x")])], ignoreMissing: false))
            let updated = try collection.get(ids: ["r2"], include: [.documents, .metadatas, .vectors])
            #expect(updated.first?.document == "document 2 of r")
            #expect(updated.first?.metadata == ["tag": .string("x")])
            await #expect(throws: StorageError.notFound("record 'missing' does not exist")) {
                try await collection.write(.update([RecordInput(id: "missing", document: "x")], ignoreMissing: false))
            }
            #expect(try await collection.write(.update([RecordInput(id: "missing", document: "x")], ignoreMissing: true)).affected == 0)

            // delete by ids (missing ids ignored) and by filter
            #expect(try await collection.write(.delete(ids: ["r3", "r4", "nope"])).affected == 2)
            #expect(collection.count == 98)
            let odd = try await collection.write(.deleteWhere(.compare(key: "parity", op: .eq, value: .string("odd")), nil))
            #expect(odd.affected == 48)
            #expect(collection.count == 50)
            #expect(try collection.get(filter: .compare(key: "parity", op: .eq, value: .string("odd"))).isEmpty)
        }
    }

    /// Two checkpoints with nothing logged between them once created the new
    /// WAL segment under the active one's name and then deleted it as covered:
    /// every later write went to an unlinked file and was gone at the next open.
    @Test func writesAfterTwoCheckpointsInARowSurviveAReopen() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        try await withEngine(directory) { engine in
            let (collection, _) = try await engine.create(CollectionConfiguration(name: "twice", dimension: 8, metric: .l2))
            _ = try await collection.write(.add(makeRecords(10)))
            try await collection.checkpoint()
            try await collection.checkpoint()
            _ = try await collection.write(.add(makeRecords(5, seed: 2, prefix: "late")))
        }
        // No close: the second engine recovers from what the first left, as after kill -9.
        try await withEngine(directory) { engine in
            let collection = try #require(engine.collection(named: "twice"))
            #expect(collection.count == 15)
            #expect(try collection.get(ids: ["late4"]).first?.document == "document 4 of late")
        }
    }

    @Test func queryFindsRecordsBeforeAndAfterIndexingAndHonoursFilters() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        try await withEngine(directory) { engine in
            let (collection, _) = try await engine.create(CollectionConfiguration(name: "q", dimension: 16, metric: .cosine))
            let records = makeRecords(3_000, dimensions: 16, seed: 2)
            for start in stride(from: 0, to: 3_000, by: 500) {
                try await collection.write(.add(Array(records[start..<(start + 500)])))
            }
            // Acknowledged means visible, indexed or not: each record is its own nearest neighbour.
            for index in stride(from: 0, to: 3_000, by: 97) {
                let hits = try collection.query([records[index].vector!], k: 1)
                #expect(hits[0].first?.id == records[index].id)
            }
            try await waitIndexed(collection)
            #expect(collection.stats().indexedRecords == 3_000)
            let filter = WhereFilter.and([
                .compare(key: "parity", op: .eq, value: .string("even")), .compare(key: "index", op: .lt, value: .int(100)),
            ])
            let filtered = try collection.query([records[7].vector!], k: 80, filter: filter)[0]
            #expect(filtered.count == 50, "exactly the 50 matches, never fewer than k that exist")
            #expect(filtered.allSatisfy { $0.metadata?["parity"] == .string("even") })
            let byDocument = try collection.query([records[7].vector!], k: 5, documentFilter: .contains("document 1234 "))[0]
            #expect(byDocument.map(\.id) == ["r1234"])
            let included = try collection.query([records[0].vector!], k: 3, include: [.vectors, .distances])[0]
            #expect(included[0].document == nil && included[0].metadata == nil)
            #expect(included[0].vector?.count == 16)
            #expect(abs(included[0].distance ?? 1) < 1e-3)
            // get: order of ids asked, filters, offset and limit
            #expect(try collection.get(ids: ["r9", "r2", "nope", "r9"]).map(\.id) == ["r9", "r2"])
            let page = try collection.get(filter: .membership(key: "index", negated: false, values: [.int(1), .int(2), .int(3), .int(4)]),
                                          offset: 1, limit: 2)
            #expect(page.map(\.id) == ["r2", "r3"])
            await #expect(throws: StorageError.self) {
                _ = try collection.query([records[0].vector!], k: 1, filter: .membership(key: "index", negated: false, values: []))
            }
        }
    }

    @Test(arguments: [DurableIO.Backend.uring, .sync])
    func survivesReopenWithAndWithoutCheckpoint(backend: DurableIO.Backend) async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let io = DurableIO(preferring: backend)
        let records = makeRecords(1_200, dimensions: 8, seed: 3)
        try await withEngine(directory, io: io) { engine in
            let (collection, _) = try await engine.create(CollectionConfiguration(name: "p", dimension: 8, metric: .innerProduct))
            try await collection.write(.add(Array(records[0..<600])))
            try await waitIndexed(collection)
            try await collection.checkpoint()
            try await collection.write(.add(Array(records[600...])))
            try await collection.write(.delete(ids: ["r0", "r700"]))
            try await collection.modify(name: "renamed", metadata: ["owner": .string("tests")])
            // no close: the tail after the checkpoint must come back from the WAL
        }
        try await withEngine(directory, io: io) { engine in
            let collection = try #require(engine.collection(named: "renamed"))
            #expect(collection.configuration.collectionMetadata == ["owner": .string("tests")])
            #expect(collection.count == 1_198)
            #expect(collection.stats().checkpointLSN >= 1)
            let got = try collection.get(ids: ["r1", "r701"], include: [.documents, .metadatas, .vectors])
            #expect(got.map(\.document) == ["document 1 of r", "document 701 of r"])
            #expect(got[1].metadata == records[701].metadata)
            #expect(try collection.get(ids: ["r0", "r700"]).isEmpty)
            try await collection.close()
        }
        try await withEngine(directory, io: io) { engine in
            let collection = try #require(engine.collection(named: "renamed"))
            #expect(collection.count == 1_198)
            #expect(collection.stats().walBytes == 0, "a clean close leaves nothing to replay")
            // Inner product: the best match is the largest dot product, found by brute force here.
            let query = records[900].vector!
            let best = records.filter { $0.id != "r0" && $0.id != "r700" }.max { a, b in
                zip(a.vector!, query).reduce(0) { $0 + $1.0 * $1.1 } < zip(b.vector!, query).reduce(0) { $0 + $1.0 * $1.1 }
            }
            let hits = try collection.query([query], k: 1)
            #expect(hits[0].first?.id == best?.id)
        }
    }

    /// Batches larger than a small unindexed limit, and a WAL holding far more
    /// than the limit (a crash or a restore), both used to overfill the tail.
    @Test func batchesAndReplayBeyondTheUnindexedLimit() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let records = makeRecords(3_000, dimensions: 8, seed: 11)
        do {
            let engine = try StorageEngine(directory: directory.path, io: .shared, tailLimits: TailLimits(always: 64, underReads: 64))
            let (collection, _) = try await engine.create(CollectionConfiguration(name: "small-tail", dimension: 8))
            for start in stride(from: 0, to: 3_000, by: 1_000) {
                try await collection.write(.add(Array(records[start..<start + 1_000])))
            }
            #expect(collection.count == 3_000)
            engine.indexer.stop()  // no checkpoint, no close: everything comes back from the WAL
        }
        // Opened with no indexer running: replay leaves the WAL's records in the
        // tail, far past its bound, instead of linking them before it returns,
        // and every one is found from there.
        let folder = try #require(try FileManager.default.contentsOfDirectory(atPath: directory.path + "/collections").first)
        do {
            let reopened = try Collection.open(directory: directory.path + "/collections/" + folder, io: .shared,
                                               limits: TailLimits(always: 64, underReads: 64))
            #expect(reopened.stats().unindexedRecords == 3_000)
            for index in [0, 1_234, 2_999] {
                #expect(try reopened.query([records[index].vector!], k: 1)[0].first?.id == "r\(index)")
            }
        }
        let engine = try StorageEngine(directory: directory.path, io: .shared, tailLimits: TailLimits(always: 64, underReads: 64))
        defer { engine.indexer.stop() }
        let collection = try #require(engine.collection(named: "small-tail"))
        #expect(collection.count == 3_000)
        let hits = try collection.query([records[2_999].vector!], k: 1)
        #expect(hits[0].first?.id == "r2999")
    }

    /// Re-running a batch, or changing only documents and metadata, must not
    /// re-index: the records keep their slots and graph nodes, leave no tombstone,
    /// and the new versions survive a restart (WAL replay takes the same path).
    @Test func unchangedVectorsAreUpdatedInPlace() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let records = makeRecords(500, dimensions: 8, seed: 21)
        let rewritten = records.map { record in
            RecordInput(id: record.id, vector: record.vector, document: "second \(record.id)", metadata: ["round": .int(2)])
        }
        do {
            let engine = try StorageEngine(directory: directory.path, io: .shared)
            let (collection, _) = try await engine.create(CollectionConfiguration(name: "in-place", dimension: 8))
            try await collection.write(.upsert(records))
            try await waitIndexed(collection)
            let before = collection.stats()
            engine.indexer.pause()  // anything left to link would now stay in the tail
            let outcome = try await collection.write(.upsert(rewritten))
            #expect(outcome.affected == 500)
            let after = collection.stats()
            #expect(after.unindexedRecords == 0, "same vectors: nothing to link")
            #expect(after.deletedAwaitingReclaim == 0, "same vectors: no tombstones")
            #expect(after.slotHighWater == before.slotHighWater)
            #expect(collection.count == 500)
            let hit = try collection.query([try #require(records[7].vector)], k: 1)[0]
            #expect(hit.first?.id == "r7")
            #expect(hit.first?.document == "second r7")
            #expect(hit.first?.metadata == ["round": .int(2)])
            // A metadata-only update takes the same path; a new vector does not.
            try await collection.write(.update([RecordInput(id: "r8", metadata: ["round": .int(3)])], ignoreMissing: false))
            #expect(collection.stats().unindexedRecords == 0)
            var moved = records[9]
            moved.vector = moved.vector.map { $0.map { -$0 } }
            try await collection.write(.upsert([moved]))
            #expect(collection.stats().unindexedRecords == 1)
            engine.indexer.resume()
            engine.indexer.stop()  // no checkpoint: the restart replays the WAL
        }
        let engine = try StorageEngine(directory: directory.path, io: .shared)
        defer { engine.indexer.stop() }
        let collection = try #require(engine.collection(named: "in-place"))
        #expect(collection.count == 500)
        let got = try collection.get(ids: ["r7", "r8", "r9"])
        #expect(got.map(\.document) == ["second r7", "second r8", "document 9 of r"])
        #expect(got[1].metadata == ["round": .int(3)])
    }

    /// A re-embedded record whose vector moved a little (here its largest
    /// component by 1%) keeps its graph node: no new slot, no tombstone, nothing
    /// in the tail, found at its new place at once and after a restart.
    @Test func slightlyMovedVectorsKeepTheirNodes() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let records = makeRecords(600, dimensions: 16, seed: 27)
        let moved = records.map { record -> RecordInput in
            var vector = record.vector ?? []
            if let largest = vector.indices.max(by: { abs(vector[$0]) < abs(vector[$1]) }) { vector[largest] *= 1.01 }
            return RecordInput(id: record.id, vector: vector, document: "moved \(record.id)")
        }
        do {
            let engine = try StorageEngine(directory: directory.path, io: .shared)
            let (collection, _) = try await engine.create(CollectionConfiguration(name: "moves", dimension: 16))
            try await collection.write(.upsert(records))
            try await waitIndexed(collection)
            let before = collection.stats()
            engine.indexer.pause()
            try await collection.write(.upsert(moved))
            let after = collection.stats()
            #expect(after.unindexedRecords == 0, "small moves need no linking")
            #expect(after.deletedAwaitingReclaim == 0 && after.slotHighWater == before.slotHighWater)
            for index in [3, 300, 599] {
                let hit = try collection.query([moved[index].vector ?? []], k: 1, include: [.documents, .vectors, .distances])[0]
                #expect(hit.first?.id == "r\(index)" && hit.first?.document == "moved r\(index)")
                #expect(abs(hit.first?.distance ?? 1) < 1e-3, "the stored vector is the moved one")
            }
            engine.indexer.resume()
            engine.indexer.stop()  // no checkpoint: the restart replays the WAL
        }
        let engine = try StorageEngine(directory: directory.path, io: .shared)
        defer { engine.indexer.stop() }
        let collection = try #require(engine.collection(named: "moves"))
        #expect(collection.count == 600)
        for index in [3, 300, 599] {
            let hit = try collection.query([moved[index].vector ?? []], k: 1, include: [.documents, .distances])[0]
            #expect(hit.first?.id == "r\(index)" && abs(hit.first?.distance ?? 1) < 1e-3)
        }
    }

    /// A full collection still takes metadata changes: in-place puts need no slot.
    @Test func aFullCollectionTakesInPlaceUpdatesAndGrowsForNewVectors() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        try await withEngine(directory) { engine in
            let (collection, _) = try await engine.create(
                CollectionConfiguration(name: "full", dimension: 8, metric: .l2, capacity: 1_000))
            let records = makeRecords(1_000, dimensions: 8, seed: 23)
            try await collection.write(.upsert(records))
            let relabelled = records.map { RecordInput(id: $0.id, vector: $0.vector, document: $0.document, metadata: ["full": .bool(true)]) }
            try await collection.write(.upsert(relabelled))
            #expect(try collection.get(ids: ["r999"]).first?.metadata == ["full": .bool(true)])
            // A new vector needs a new slot: the collection grows past its reservation for it.
            #expect(collection.reservedSlots == 1_000)
            try await collection.write(.upsert([RecordInput(id: "r0", vector: Array(repeating: 1, count: 8))]))
            #expect(collection.reservedSlots > 1_000)
            #expect(collection.count == 1_000)
        }
    }

    /// Readers racing in-place updates see each record whole: document and
    /// metadata from the same version, never a mix or a gap.
    @Test func readersNeverSeeAHalfReplacedRecord() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        try await withEngine(directory) { engine in
            let (collection, _) = try await engine.create(CollectionConfiguration(name: "race", dimension: 8))
            let records = makeRecords(200, dimensions: 8, seed: 22)
            func version(_ round: Int) -> [RecordInput] {
                records.map { record in
                    // Sizes vary by round, so an offset paired with another version's size shows.
                    RecordInput(id: record.id, vector: record.vector, document: String(repeating: "v\(round) ", count: 1 + round % 7),
                                metadata: ["round": .int(Int64(round))])
                }
            }
            try await collection.write(.upsert(version(0)))
            let rounds = 60
            let checked = try await withThrowingTaskGroup(of: Int.self) { group in
                group.addTask {
                    for round in 1...rounds { try await collection.write(.upsert(version(round))) }
                    return 0
                }
                group.addTask {
                    var seen = 0
                    while true {
                        try Task.checkCancellation()
                        let got = try collection.get(ids: records.map(\.id))
                        #expect(got.count == 200, "every record readable while it is replaced")
                        for record in got {
                            guard case .int(let round)? = record.metadata?["round"] else {
                                Issue.record("record \(record.id) without its round")
                                continue
                            }
                            let expected = String(repeating: "v\(round) ", count: 1 + Int(round) % 7)
                            #expect(record.document == expected, "document and metadata of one version")
                        }
                        seen += got.count
                        if case .int(let last)? = got.last?.metadata?["round"], last == Int64(rounds) { return seen }
                    }
                }
                var total = 0
                for try await count in group { total += count }
                return total
            }
            #expect(checked > 0)
            #expect(collection.stats().slotHighWater == 200, "in-place updates take no new slots")
        }
    }

    @Test func deletedSlotsAreReusedAfterReclaim() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        try await withEngine(directory) { engine in
            let (collection, _) = try await engine.create(CollectionConfiguration(name: "churn", dimension: 8, metric: .l2, capacity: 3_000))
            // 5 rounds of 1,000 records in a collection of capacity 3,000: only slot reuse makes this fit.
            for round in 0..<5 {
                let batch = makeRecords(1_000, dimensions: 8, seed: UInt64(10 + round), prefix: "round\(round)-")
                try await collection.write(.upsert(batch))
                try await waitIndexed(collection)
                if round > 0 {
                    try await collection.write(.deleteWhere(.compare(key: "index", op: .gte, value: .int(0)),
                                                            .contains("of round\(round - 1)-")))
                }
                // let the indexer reclaim
                let deadline = Date().addingTimeInterval(30)
                while collection.stats().deletedAwaitingReclaim > 0 && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(collection.count == 1_000)
            #expect(collection.stats().slotHighWater <= 3_000)
            let last = makeRecords(1_000, dimensions: 8, seed: 14, prefix: "round4-")
            #expect(try collection.query([last[10].vector!], k: 1)[0].first?.id == "round4-10")
        }
    }

    @Test func snapshotDuringWritesOpensToAnAcknowledgedPrefix() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let snapshotDirectory = directory.file("snapshot")
        let records = makeRecords(4_000, dimensions: 8, seed: 4)
        var acknowledged = 0
        var snapshotLSN: UInt64 = 0
        var snapshotRecords = 0
        try await withEngine(directory) { engine in
            let (collection, _) = try await engine.create(CollectionConfiguration(name: "s", dimension: 8, metric: .l2))
            try await collection.write(.add(Array(records[0..<1_000])))
            try await collection.checkpoint()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for start in stride(from: 1_000, to: 4_000, by: 100) {
                        _ = try await collection.write(.add(Array(records[start..<(start + 100)])))
                    }
                }
                try await Task.sleep(for: .milliseconds(30))
                let position = try await collection.snapshot(to: snapshotDirectory)
                snapshotLSN = position.lsn
                snapshotRecords = position.records
                try await group.waitForAll()
            }
            acknowledged = collection.count
        }
        #expect(acknowledged == 4_000)
        // The snapshot opens on its own, to exactly the batches up to its LSN: a prefix.
        let restored = TemporaryDirectory()
        defer { restored.remove() }
        try FileManager.default.createDirectory(atPath: restored.file("collections"), withIntermediateDirectories: true)
        let id = try #require(FileManager.default.contentsOfDirectory(atPath: directory.file("collections")).first)
        try FileManager.default.moveItem(atPath: snapshotDirectory, toPath: restored.file("collections/\(id)"))
        try await withEngine(restored) { engine in
            let collection = try #require(engine.collection(named: "s"))
            let count = collection.count
            #expect(count >= 1_000 && count <= 4_000)
            #expect((count - 1_000) % 100 == 0, "whole batches only")
            #expect(UInt64((count - 1_000) / 100 + 1) == snapshotLSN, "LSN 1 is the first add, then one per batch")
            // The record count the snapshot reports is the one it holds, not the live count after it.
            #expect(count == snapshotRecords)
            let ids = Set(try collection.get(include: []).map(\.id))
            #expect(ids == Set(records.prefix(count).map(\.id)))
        }
    }

    @Test func catalogCreateGetOrCreateDeleteAndNames() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        try await withEngine(directory) { engine in
            _ = try await engine.create(CollectionConfiguration(name: "a1", dimension: 4))
            let (again, created) = try await engine.create(CollectionConfiguration(name: "a1", dimension: 4), getOrCreate: true)
            #expect(!created && again.name == "a1")
            await #expect(throws: StorageError.alreadyExists("collection 'a1' already exists")) {
                _ = try await engine.create(CollectionConfiguration(name: "a1", dimension: 4))
            }
            await #expect(throws: StorageError.self) { _ = try await engine.create(CollectionConfiguration(name: "-bad", dimension: 4)) }
            await #expect(throws: StorageError.self) { _ = try await engine.create(CollectionConfiguration(name: "ok", dimension: 4_097)) }
            // Dimension 0: decided by the first write (ChromaDB's collections work this way).
            let (undecided, _) = try await engine.create(CollectionConfiguration(name: "later", dimension: 0))
            #expect(undecided.name == "later")
            try await engine.delete(named: "later")
            try await engine.delete(named: "a1")
            #expect(engine.collection(named: "a1") == nil)
            await #expect(throws: StorageError.notFound("collection 'a1' does not exist")) { try await engine.delete(named: "a1") }
        }
        try await withEngine(directory) { engine in #expect(engine.list().isEmpty) }
    }
}
