import SextantIndex
import SextantKernels
import SextantPayload
import SextantStorage
import Testing

/// A collection's state as a dictionary: the write plan's rules, with no disk.
struct DictionaryPlanState: WritePlanState {
    struct Stored {
        var halves: [UInt16]
        var document: [UInt8]?
        var metadata: Metadata
    }
    var records: [String: (slot: UInt32, stored: Stored)] = [:]
    var availableSlots = 100
    var capacity = 100
    var slotsInUse = 0
    var heapBytesAvailable = 1 << 20

    mutating func put(_ id: String, slot: UInt32, halves: [UInt16], document: String? = nil, metadata: Metadata = [:]) {
        records[id] = (slot, Stored(halves: halves, document: document.map { Array($0.utf8) }, metadata: metadata))
    }

    private func stored(_ slot: UInt32) -> Stored? { records.values.first { $0.slot == slot }?.stored }
    func slot(of id: String) -> UInt32? { records[id]?.slot }
    func storedRecord(_ slot: UInt32) -> (document: [UInt8]?, metadata: [UInt8])? {
        stored(slot).map { ($0.document, MetadataCodec.encode($0.metadata)) }
    }
    func storedHalves(_ slot: UInt32) -> [UInt16] { stored(slot)?.halves ?? [] }
    func storesHalves(_ slot: UInt32, _ halves: [UInt16]) -> Bool { stored(slot)?.halves == halves }
    func ids(matching filter: WhereFilter?, _ documentFilter: DocumentFilter?) -> [String] {
        records.compactMap { id, record in
            if let filter, !filter.matches(record.stored.metadata) { return nil }
            if let documentFilter {
                let matched = record.stored.document.map { bytes in bytes.withUnsafeBytes { documentFilter.matches($0) } }
                    ?? documentFilter.matches(nil)
                if !matched { return nil }
            }
            return id
        }.sorted()
    }
}

@Suite struct WritePlanTests {
    let layout = try! HNSWLayout(dimensions: 4, metric: .cosine, parameters: HNSWParameters(), capacity: 100)

    func halves(_ vector: [Float]) throws -> [UInt16] {
        try vector.withUnsafeBufferPointer { (buffer) throws(IndexError) in try layout.storedForm(buffer) }
    }

    @Test func prepareNormalisesAndEncodesWithoutState() throws {
        let prepared = try WritePlan.prepare(
            .upsert([RecordInput(id: "a", vector: [3, 0, 4, 0], document: "doc", metadata: ["year": .int(2024)])]), layout: layout)
        #expect(prepared.kind == .upsert)
        #expect(prepared.newRecordCount == 1)
        let record = try #require(prepared.records.first)
        #expect(record.halves == (try halves([0.6, 0, 0.8, 0])), "cosine vectors are stored normalised")
        #expect(record.document == Array("doc".utf8))
        #expect(record.metadata == MetadataCodec.encode(["year": .int(2024)]))
    }

    @Test func prepareRefusesBadInputNamingTheRecord() {
        let cases: [(WriteRequest, String)] = [
            (.add([]), "the batch is empty"),
            (.add([RecordInput(id: "", vector: [1, 0, 0, 0])]), "must be 1...1024 bytes"),
            (.upsert([RecordInput(id: "a", vector: [1, 0, 0, 0]), RecordInput(id: "a", vector: [1, 0, 0, 0])]), "appears twice"),
            (.add([RecordInput(id: "short", vector: [1, 0, 0])]), "record 'short': vector has 3 dimensions"),
            (.add([RecordInput(id: "nan", vector: [.nan, 0, 0, 0])]), "record 'nan': vector contains NaN"),
            (.add([RecordInput(id: "novector")]), "record 'novector' has no vector"),
            (.upsert([RecordInput(id: "meta", vector: [1, 0, 0, 0], metadata: ["$bad": .int(1)])]), "record 'meta'"),
            (.deleteWhere(nil, nil), "delete needs ids or a filter"),
            (.deleteWhere(.gt("title", .string("x")), nil), "operand must be a number"),
        ]
        for (request, message) in cases {
            do {
                _ = try WritePlan.prepare(request, layout: layout)
                Issue.record("accepted: \(message)")
            } catch let error as StorageError {
                guard case .invalidArgument(let text) = error else {
                    Issue.record("\(error) is not invalid argument")
                    continue
                }
                #expect(text.contains(message), "\(text) should say \(message)")
                #expect(!text.contains("invalid argument: "), "no doubled prefix in \(text)")
            } catch {
                Issue.record("unexpected \(error)")
            }
        }
    }

    @Test func resolveRefusesAnAddOfAnExistingIdAndAnUpdateOfAMissingOne() throws {
        var state = DictionaryPlanState()
        state.put("a", slot: 0, halves: try halves([1, 0, 0, 0]))
        let add = try WritePlan.prepare(.add([RecordInput(id: "a", vector: [0, 1, 0, 0])]), layout: layout)
        #expect(throws: StorageError.alreadyExists("record 'a' already exists")) { try WritePlan.resolve(add, in: state) }
        let update = try WritePlan.prepare(.update([RecordInput(id: "missing", document: "x")], ignoreMissing: false), layout: layout)
        #expect(throws: StorageError.notFound("record 'missing' does not exist")) { try WritePlan.resolve(update, in: state) }
        let ignoring = try WritePlan.prepare(.update([RecordInput(id: "missing", document: "x")], ignoreMissing: true), layout: layout)
        #expect(try WritePlan.resolve(ignoring, in: state).operations.isEmpty)
    }

    @Test func anUpdateKeepsEveryFieldItDoesNotName() throws {
        var state = DictionaryPlanState()
        let stored = try halves([1, 0, 0, 0])
        state.put("a", slot: 3, halves: stored, document: "old text", metadata: ["k": .string("v")])
        let update = try WritePlan.prepare(.update([RecordInput(id: "a", metadata: ["k": .string("new")])], ignoreMissing: false),
                                           layout: layout)
        let resolved = try WritePlan.resolve(update, in: state)
        guard case .put(let id, let putHalves, let document, let metadata) = try #require(resolved.operations.first) else {
            Issue.record("an update resolves to a put")
            return
        }
        #expect(id == Array("a".utf8))
        #expect(putHalves == stored)
        #expect(document == Array("old text".utf8))
        #expect(metadata == MetadataCodec.encode(["k": .string("new")]))
    }

    @Test func deletesResolveToTheIdsThatExistOrMatch() throws {
        var state = DictionaryPlanState()
        state.put("a", slot: 0, halves: try halves([1, 0, 0, 0]), metadata: ["year": .int(2020)])
        state.put("b", slot: 1, halves: try halves([0, 1, 0, 0]), metadata: ["year": .int(2024)])
        let byIds = try WritePlan.prepare(.delete(ids: ["a", "nope"]), layout: layout)
        #expect(try WritePlan.resolve(byIds, in: state).affected == 1)
        let byFilter = try WritePlan.prepare(.deleteWhere(.gte("year", .int(2021)), nil), layout: layout)
        let resolved = try WritePlan.resolve(byFilter, in: state)
        #expect(resolved.operations.count == 1)
        if case .delete(let id)? = resolved.operations.first { #expect(id == Array("b".utf8)) } else { Issue.record("a delete") }
    }

    @Test func capacityCountsOnlyPutsThatNeedANewSlotAndAsksForGrowth() throws {
        var state = DictionaryPlanState()
        state.availableSlots = 1
        state.capacity = 100
        state.slotsInUse = 99
        let kept = try halves([1, 0, 0, 0])
        state.put("a", slot: 0, halves: kept)
        // Two puts, one of them keeps its vector: it is replaced in place and needs no slot.
        let fits = try WritePlan.prepare(
            .upsert([RecordInput(id: "a", vector: [1, 0, 0, 0], document: "new"), RecordInput(id: "b", vector: [0, 1, 0, 0])]),
            layout: layout)
        #expect(try WritePlan.checkCapacity(try WritePlan.resolve(fits, in: state), in: state) == nil)
        // One slot short: not a refusal, a request for a checkpoint that reserves more.
        let tooMany = try WritePlan.prepare(
            .upsert([RecordInput(id: "b", vector: [0, 1, 0, 0]), RecordInput(id: "c", vector: [0, 0, 1, 0])]), layout: layout)
        #expect(try WritePlan.checkCapacity(try WritePlan.resolve(tooMany, in: state), in: state) == Growth(slots: 101))
        // A full heap asks for a checkpoint too (it compacts, and reserves four times what is live).
        state.heapBytesAvailable = 10
        #expect(try WritePlan.checkCapacity(try WritePlan.resolve(fits, in: state), in: state) != nil)
        // Past the most slots a collection can ever have: refused, nothing applied.
        state.heapBytesAvailable = 1 << 20
        state.slotsInUse = StorageLimits.maximumCollectionCapacity
        state.capacity = StorageLimits.maximumCollectionCapacity
        state.availableSlots = 0
        #expect(throws: StorageError.self) { try WritePlan.checkCapacity(try WritePlan.resolve(tooMany, in: state), in: state) }
    }
}

@Suite struct IndexerPolicyTests {
    @Test func tombstonesAreReclaimedEarlierWhileQueriesRun() {
        // 10,000 live nodes, 1,500 tombstones: under the idle half, over the busy eighth.
        let quiet = IndexerPolicy.upkeep(busy: true, readers: false, deleted: 1_500, live: 10_000, limbo: 0, linkedSinceRepair: 0)
        let read = IndexerPolicy.upkeep(busy: true, readers: true, deleted: 1_500, live: 10_000, limbo: 0, linkedSinceRepair: 0)
        #expect(!quiet.isDue)
        #expect(read.reclaim)
    }

    @Test func idleUpkeepReclaimsRepairsAndFreesLimbo() {
        let idle = IndexerPolicy.upkeep(busy: false, readers: false, deleted: 600, live: 10_000, limbo: 3, linkedSinceRepair: 5)
        #expect(idle == IndexerPolicy.Upkeep(reclaim: true, freeLimbo: true, repair: true))
        let busy = IndexerPolicy.upkeep(busy: true, readers: false, deleted: 600, live: 10_000, limbo: 3, linkedSinceRepair: 5)
        #expect(busy == IndexerPolicy.Upkeep(), "mid-ingest only urgent upkeep runs")
        let crowdedLimbo = IndexerPolicy.upkeep(busy: true, readers: false, deleted: 0, live: 10, limbo: 1_024, linkedSinceRepair: 0)
        #expect(crowdedLimbo.freeLimbo)
    }
}
