import Foundation
import SextantConcurrency
import SextantIndex
import SextantKernels
import SextantPayload
import SextantText

extension Collection {
    // MARK: - Writes

    /// Applies a write durably. `pacer` carries the caller's pauses on (the engine
    /// paces its decoding with it too); by default one is made for this write.
    public func write(_ request: WriteRequest, pacer given: ReaderPacer? = nil) async throws -> WriteOutcome {
        try refuseIfFollowing()
        guard !closed.load(ordering: .acquiring) else { throw StorageError.unavailable("collection is closed") }
        if isDimensionPending { try await decideDimension(request) }
        // The bulk of a write's CPU, outside every lock, paced like the indexer
        // while queries run: a few 20 µs pauses per millisecond.
        var pacer = given ?? ReaderPacer(readers: tail.hasRecentReaders)
        let prepared = try WritePlan.prepare(request, layout: layout) { pacer.step() }
        var lsn: LSN = 0
        var affected = 0
        while true {
            let step = try await writerLock.withLock { () throws -> WriteStep in
                await tail.waitForRoom(prepared.newRecordCount)
                return try state.withLock { (state) throws -> WriteStep in
                    let resolved: WritePlan.Resolved
                    do {
                        // The view holds a copy of the state: it must be gone before
                        // `apply` mutates the id map, or every batch copies the
                        // whole map (copy-on-write), a cost that grows with the collection.
                        let view = PlanView(state: state, generation: current.withLock { $0 })
                        resolved = try WritePlan.resolve(prepared, in: view) { pacer.step() }
                        guard !resolved.operations.isEmpty else { return .applied(lsn: 0, affected: 0) }
                        if let growth = try WritePlan.checkCapacity(resolved, in: view) { return .needs(growth) }
                    }
                    let payload = BatchCodec.encode(resolved.operations) { pacer.step() }
                    guard payload.count <= StorageLimits.maximumEntryBytes else {
                        throw StorageError.invalidArgument("batch encodes to \(payload.count) bytes, over \(StorageLimits.maximumEntryBytes)")
                    }
                    let lsn = try wal.enqueue(kind: EntryKind.batch, payload: payload)
                    try apply(resolved.operations, &state) { pacer.step() }
                    appliedLSNValue.store(lsn, ordering: .releasing)
                    return .applied(lsn: lsn, affected: resolved.affected)
                }
            }
            switch step {
            case .applied(let applied, let count):
                (lsn, affected) = (applied, count)
            case .needs(let growth):
                // No ceiling: a checkpoint reserves more slots and compacts the
                // heap, then the write is planned again against the new generation.
                try await checkpoint(reservingSlots: growth.slots)
                continue
            }
            break
        }
        guard lsn > 0 else { return WriteOutcome(lsn: wal.durableLSN, affected: 0) }
        indexer?.wake()
        try await wal.waitDurable(lsn)
        if wal.bytesSinceCheckpoint >= StorageLimits.checkpointWALBytes { scheduleCheckpoint() }
        if let gate = acknowledgementGate.withLock({ $0 }) { try await gate(self, lsn) }
        return WriteOutcome(lsn: lsn, affected: affected)
    }

    /// Turns the collection's own BM25 index on, changes its parameters (a
    /// rebuild), or turns it off. A build reads every record beside the
    /// writers, at background priority and paced while queries run, catches
    /// up on the batches applied meanwhile, and only then is the change
    /// logged: a crash before leaves the collection as it was. Lexical search
    /// answers with the old index (or FAILED_PRECONDITION) until then.
    public func setTextIndex(_ settings: TextIndexSettings?) async throws {
        try settings?.validate()
        try refuseIfFollowing()
        guard !closed.load(ordering: .acquiring) else { throw StorageError.unavailable("collection is closed") }
        guard settings != configuration.textIndex else { return }
        var built: BM25Index?
        if let settings {
            let started = await writerLock.withLock { text.beginBuild() }
            guard started else { throw StorageError.failedPrecondition("a text index build of '\(name)' is already running") }
            do {
                built = try await Blocking.run(at: indexer?.priority) { [self] in
                    var pacer = ReaderPacer(readers: tail.hasRecentReaders)
                    return text.build(settings, from: current.withLock { $0 }) { pacer.step() }
                }
            } catch {
                text.cancelBuild()
                throw error
            }
        }
        let lsn: LSN
        do {
            lsn = try await writerLock.withLock { () throws -> LSN in
                try state.withLock { (state) throws -> LSN in
                    var configuration = state.configuration
                    configuration.textIndex = settings
                    let lsn = try wal.enqueue(kind: EntryKind.configuration, payload: try Self.encoded(configuration))
                    state.configuration = configuration
                    if let built { text.finishBuild(built) } else { text.reset(nil) }
                    return lsn
                }
            }
        } catch {
            text.cancelBuild()
            throw error
        }
        try await wal.waitDurable(lsn)
    }

    static func encoded(_ configuration: CollectionConfiguration) throws -> [UInt8] {
        do { return Array(try JSONEncoder().encode(configuration)) } catch {
            throw StorageError.invalidArgument("configuration does not encode: \(error)")
        }
    }

    /// Renames the collection or replaces its metadata, durably (through the WAL).
    public func modify(name: String?, metadata: Metadata?) async throws {
        try refuseIfFollowing()
        if let name { try CollectionConfiguration.validateName(name) }
        if let metadata { try MetadataCodec.validate(metadata) }
        guard (metadata ?? [:]).values.allSatisfy(\.isScalar) else {
            throw StorageError.invalidArgument("collection metadata values must be strings, numbers or booleans")
        }
        let lsn = try await writerLock.withLock { () throws -> LSN in
            try state.withLock { (state) throws -> LSN in
                var configuration = state.configuration
                if let name { configuration.name = name }
                if let metadata { configuration.metadata = metadata.mapValues(TaggedValue.init) }
                let lsn = try wal.enqueue(kind: EntryKind.configuration, payload: try Self.encoded(configuration))
                state.configuration = configuration
                return lsn
            }
        }
        try await wal.waitDurable(lsn)
    }

    // MARK: - Apply

    /// Applies resolved operations in memory. Used by live writes (after the WAL
    /// append) and by recovery. New versions are published before old ones are
    /// retired, so a concurrent reader sees a record once or (briefly) in both
    /// versions, never neither; readers de-duplicate by id. A put that keeps a
    /// record's vector (a re-run batch, a metadata update), or moves it only a
    /// little (`HNSWIndex.moveVector`: a re-embedded, lightly edited text),
    /// replaces the record in its slot instead: it keeps its place in the
    /// graph, with nothing to re-link and no tombstone left behind.
    func apply(_ operations: [ResolvedOperation], _ state: inout MutationState, pace: () -> Void = {}) throws {
        let generation = current.withLock { $0 }
        var published: [UInt32] = []
        var retired: [UInt32] = []
        let indexesText = text.wantsChanges
        var textChanges: [CollectionTextIndex.Change] = []
        let indexesSparse = sparse.isEnabled
        var sparseChanges: [CollectionSparseIndexes.Change] = []
        let indexesPayload = payload.isEnabled
        var payloadChanges: [CollectionPayloadIndexes.Change] = []
        var types = fieldTypes.withLock { $0 }
        let knownTypes = types
        for operation in operations {
            pace()
            switch operation {
            case .put(let idBytes, let halves, let document, let metadata):
                let id = String(decoding: idBytes, as: UTF8.self)
                metadata.withUnsafeBytes { MetadataTypes.note($0, into: &types) }
                if let existing = state.ids[id], generation.index.storesHalves(existing, halves)
                    || halves.withUnsafeBufferPointer({ generation.index.moveVector(slot: existing, halves: $0) })
                {
                    try generation.records.store(slot: existing, id: idBytes, document: document, metadata: metadata)
                    if indexesText { textChanges.append(.init(slot: existing, terms: text.terms(document))) }
                    if indexesSparse { sparseChanges.append(.init(slot: existing, metadata: metadata)) }
                    if indexesPayload { payloadChanges.append(.init(slot: existing, metadata: metadata)) }
                    continue
                }
                let slot: UInt32
                if let reused = state.freeSlots.popLast() {
                    slot = reused
                } else {
                    guard Int(state.nextSlot) < layout.capacity else {
                        throw StorageError.resourceExhausted("collection capacity of \(layout.capacity) slots reached")
                    }
                    slot = state.nextSlot
                    state.nextSlot += 1
                }
                do { try halves.withUnsafeBufferPointer { (buffer) throws(IndexError) in try generation.index.writeVector(slot: slot, halves: buffer) } } catch {
                    throw StorageError(error)
                }
                try generation.records.store(slot: slot, id: idBytes, document: document, metadata: metadata)
                generation.records.setLive(slot, true)
                if let old = state.ids.updateValue(slot, forKey: id) { retired.append(old) } else { state.liveRecords += 1 }
                published.append(slot)
                if indexesText { textChanges.append(.init(slot: slot, terms: text.terms(document))) }
                if indexesSparse { sparseChanges.append(.init(slot: slot, metadata: metadata)) }
                if indexesPayload { payloadChanges.append(.init(slot: slot, metadata: metadata)) }
            case .delete(let idBytes):
                let id = String(decoding: idBytes, as: UTF8.self)
                if let old = state.ids.removeValue(forKey: id) {
                    retired.append(old)
                    state.liveRecords -= 1
                }
            }
        }
        if indexesText { textChanges += retired.map { .init(slot: $0, terms: nil) } }
        // Before the tail publishes and the old versions retire: a reader then
        // finds a replaced document's new terms as soon as its record.
        text.apply(textChanges)
        if indexesSparse { sparseChanges += retired.map { .init(slot: $0, metadata: nil) } }
        sparse.apply(sparseChanges)
        if types != knownTypes { fieldTypes.withLock { $0.merge(types) { $0 | $1 } } }
        if indexesPayload { payloadChanges += retired.map { .init(slot: $0, metadata: nil) } }
        payload.apply(payloadChanges)
        publishToTail(published, generation)
        for slot in retired { retire(slot, generation) }
        assert(state.liveRecords == state.ids.count, "live records equal the id map's size")
        assert(state.liveRecords >= 0 && Int(state.nextSlot) <= layout.capacity, "slot accounting stays in range")
    }

    func publishToTail(_ slots: [UInt32], _ generation: Generation) {
        if layout.metric != .cosine && tailCodesRank.load(ordering: .relaxed)
            && !slots.allSatisfy({ generation.index.hasUnitLength($0) })
        {
            tailCodesRank.store(false, ordering: .relaxed)
        }
        precondition(tail.codeWords == SignCodes.words(dimensions: generation.index.layout.dimensions),
                     "tail codes sized for another dimension")
        let fitted = tail.publish(slots) { slot, code in generation.index.signCode(slot, into: code) }
        precondition(fitted, "writers wait for tail room before applying")
    }

    private func retire(_ slot: UInt32, _ generation: Generation) {
        generation.records.setLive(slot, false)
        if generation.index.isLinked(slot) {
            generation.index.markDeleted(slot)
        }
        // Not linked yet: the indexer finds it dead in the tail and puts it in limbo.
    }
}

enum WriteStep {
    case applied(lsn: LSN, affected: Int)
    case needs(Growth)
}

/// The collection's side of `WritePlanState`: its id map and the current generation.
struct PlanView: WritePlanState {
    let state: Collection.MutationState
    let generation: Generation

    func slot(of id: String) -> UInt32? { state.ids[id] }

    func storedRecord(_ slot: UInt32) -> (document: [UInt8]?, metadata: [UInt8])? {
        guard let view = generation.records.record(slot) else { return nil }
        return (view.document.map { Array($0) }, Array(view.metadata))
    }

    func storedHalves(_ slot: UInt32) -> [UInt16] { Array(generation.index.storedHalves(slot)) }

    func storesHalves(_ slot: UInt32, _ halves: [UInt16]) -> Bool { generation.index.storesHalves(slot, halves) }

    func ids(matching filter: WhereFilter?, _ documentFilter: DocumentFilter?) -> [String] {
        state.ids.compactMap { id, slot in
            generation.records.matches(slot, filter, documentFilter) ? id : nil
        }
    }

    var availableSlots: Int { state.freeSlots.count + (generation.index.layout.capacity - Int(state.nextSlot)) }
    var capacity: Int { generation.index.layout.capacity }
    var slotsInUse: Int { Int(state.nextSlot) }
    var heapBytesAvailable: Int { generation.records.heap.reservedBytes - generation.records.heapUsedBytes }
}
