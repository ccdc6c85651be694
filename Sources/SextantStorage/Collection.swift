import Foundation
import SextantIndex
import SextantKernels
import SextantPayload
import Synchronization

/// A write request, before validation.
public enum WriteRequest: Sendable {
    /// Fails with `.alreadyExists` if any id exists.
    case add([RecordInput])
    /// Inserts or replaces whole records.
    case upsert([RecordInput])
    /// Changes the given fields of existing records. `ignoreMissing` skips ids
    /// that do not exist (ChromaDB's behaviour); otherwise they fail the batch.
    case update([RecordInput], ignoreMissing: Bool)
    case delete(ids: [String])
    /// Deletes every record matching the filters (resolved to ids at write time).
    case deleteWhere(WhereFilter?, DocumentFilter?)
}

public struct WriteOutcome: Sendable, Equatable {
    public var lsn: LSN
    /// Records added, replaced, updated or deleted.
    public var affected: Int
}

public struct CollectionStats: Sendable, Equatable {
    public var liveRecords: Int
    public var unindexedRecords: Int
    public var indexedRecords: Int
    public var deletedAwaitingReclaim: Int
    public var slotHighWater: Int
    public var lastLSN: LSN
    public var durableLSN: LSN
    public var checkpointLSN: LSN
    public var generation: UInt64
    public var walBytes: Int
    public var diskBytes: Int
}

/// One collection: records (id, float16 vector, document, metadata), their
/// HNSW index, the WAL that makes writes durable, and checkpoints.
///
/// Writes: validate → take the writer lock (async) → resolve against current
/// state → append to the WAL → apply in memory → release → wait until the WAL
/// group holding the batch is fsynced → acknowledge. Applied records are
/// readable at once (exactly, from the unindexed tail) and linked into the
/// graph by the indexer afterwards.
///
/// Reads never take the writer lock and never wait for an fsync or a
/// checkpoint: they pin the current generation, enter its reclamation gate, and
/// read lock-free structures.
public final class Collection: @unchecked Sendable {
    public let directory: String
    /// The index layout of the current generation (its dimension is fixed once decided).
    var layout: HNSWLayout { current.withLock { $0 }.index.layout }
    let wal: WriteAheadLog
    let tail: UnindexedTail
    /// Shared by linking (indexer) and exclusive for reclaim and checkpoint.
    let indexLock = ReadWriteLock()
    private let writerLock = AsyncLock()
    private let checkpointLock = AsyncLock()
    private let current: Mutex<Generation>
    private let state: Mutex<MutationState>
    private let closed = Atomic<Bool>(false)
    private let checkpointRunning = Atomic<Bool>(false)
    weak var indexer: Indexer?

    struct MutationState {
        var configuration: CollectionConfiguration
        var ids: [String: UInt32] = [:]
        var freeSlots: [UInt32] = []
        /// Deleted before they were linked: free after a grace period.
        var limbo: [UInt32] = []
        var nextSlot: UInt32 = 0
        var liveRecords = 0
        var checkpointLSN: LSN = 0
        var linkedSinceRepair = 0
    }

    public var configuration: CollectionConfiguration { state.withLock { $0.configuration } }
    public var name: String { configuration.name }
    public var id: String { configuration.id }
    public var count: Int { state.withLock { $0.liveRecords } }

    private init(directory: String, wal: WriteAheadLog, generation: Generation, state: MutationState, unindexedLimit: Int,
                 unindexedLimitUnderReads: Int) {
        self.directory = directory
        self.wal = wal
        tail = UnindexedTail(limit: unindexedLimit, underReads: unindexedLimitUnderReads)
        // A collection still waiting for its dimension has a one-dimensional
        // placeholder generation: its codes are sized when the first write decides.
        if state.configuration.dimension > 0 { tail.prepareCodes(dimensions: state.configuration.dimension) }
        current = Mutex(generation)
        self.state = Mutex(state)
    }

    // MARK: - Create and open

    static func create(directory: String, configuration: CollectionConfiguration, io: DurableIO,
                       unindexedLimit: Int = StorageLimits.unindexedTailCapacity,
                       unindexedLimitUnderReads: Int = StorageLimits.unindexedTailCapacity) throws -> Collection
    {
        try CollectionConfiguration.validateName(configuration.name)
        _ = try configuration.layout()
        try Files.makeDirectories(directory)
        let manifest = Manifest(
            configuration: configuration, generation: 0, checkpointLSN: 0, index: HNSWState(), heapUsedBytes: 0,
            liveRecords: 0, files: [:])
        try Files.writeAtomically(directory + "/" + Manifest.fileName, try manifest.encoded())
        return try open(directory: directory, io: io, unindexedLimit: unindexedLimit, unindexedLimitUnderReads: unindexedLimitUnderReads)
    }

    /// Opens a collection: verifies the manifest and every data file's checksum,
    /// maps the files, and replays only the WAL entries after the checkpoint.
    static func open(directory: String, io: DurableIO, unindexedLimit: Int = StorageLimits.unindexedTailCapacity,
                     unindexedLimitUnderReads: Int = StorageLimits.unindexedTailCapacity) throws
        -> Collection
    {
        let manifest = try Manifest.read(directory + "/" + Manifest.fileName)
        let layout = try manifest.configuration.layout()
        let generationDirectory = directory + "/" + Manifest.generationDirectory(manifest.generation)
        let generation = try Generation.open(
            directory: manifest.files.isEmpty ? nil : generationDirectory, manifest: manifest, layout: layout, verify: true)
        var state = MutationState(configuration: manifest.configuration, checkpointLSN: manifest.checkpointLSN)
        rebuildState(&state, generation: generation)
        let (wal, recovered) = try WriteAheadLog.open(
            directory: directory + "/wal", afterLSN: manifest.checkpointLSN, io: io)
        let collection = Collection(directory: directory, wal: wal, generation: generation, state: state,
                                    unindexedLimit: unindexedLimit, unindexedLimitUnderReads: unindexedLimitUnderReads)
        try collection.replay(recovered)
        collection.requeueUnlinked()
        return collection
    }

    /// Id map, free list and counts from the slot table (the generation's files).
    private static func rebuildState(_ state: inout MutationState, generation: Generation) {
        let highWater = UInt32(generation.index.slotHighWater)
        state.nextSlot = highWater
        for slot in 0..<highWater {
            if generation.records.isLive(slot), let view = generation.records.record(slot),
                let id = String(validating: view.id.bindMemory(to: UInt8.self), as: UTF8.self)
            {
                state.ids[id] = slot
                state.liveRecords += 1
            } else if !generation.index.isLinked(slot) {
                state.freeSlots.append(slot)
            }
        }
        state.freeSlots.reverse()  // lowest slots first (popLast)
    }

    private func replay(_ recovered: WriteAheadLog.Recovered) throws {
        for entry in recovered.entries {
            switch entry.kind {
            case EntryKind.batch:
                // Nothing indexes during replay: link what is over the limit
                // first, so a long WAL (after a crash or a restore) never
                // overfills the tail. Outside the state lock: indexing takes it.
                if tail.isOverLimit { drainTailSynchronously() }
                let operations = try BatchCodec.decode(entry.payload, dimensions: layout.dimensions)
                try state.withLock { (state) throws in try apply(operations, &state) }
            case EntryKind.configuration:
                let configuration: CollectionConfiguration
                do { configuration = try JSONDecoder().decode(CollectionConfiguration.self, from: Data(entry.payload)) } catch {
                    throw StorageError.corrupted("\(wal.directory): configuration entry \(entry.lsn) does not decode")
                }
                state.withLock { $0.configuration = configuration }
            default:
                throw StorageError.corrupted("\(wal.directory): entry \(entry.lsn) has unknown kind \(entry.kind)")
            }
        }
    }

    /// Live slots that are in no graph yet (written after the checkpoint, or
    /// unlinked when it was taken) go back to the indexer's queue.
    private func requeueUnlinked() {
        let generation = current.withLock { $0 }
        var pending: [UInt32] = []
        for slot in 0..<UInt32(generation.index.slotHighWater)
        where generation.records.isLive(slot) && !generation.index.isLinked(slot) {
            pending.append(slot)
        }
        var start = 0
        while start < pending.count {  // replay never exceeds capacity: it re-applies what fit before
            let chunk = Array(pending[start..<min(start + tail.free, pending.count)])
            if chunk.isEmpty { break }
            publishToTail(chunk, generation)
            start += chunk.count
            if start < pending.count { drainTailSynchronously() }
        }
    }

    private func drainTailSynchronously() {
        while tail.count > 0 { _ = indexSome(maximum: 256) }
    }

    enum EntryKind {
        static let batch: UInt8 = 1
        static let configuration: UInt8 = 2
    }

    // MARK: - Writes

    /// True until the first write of a collection created without a dimension.
    public var isDimensionPending: Bool { configuration.dimension == 0 }

    public func write(_ request: WriteRequest) async throws -> WriteOutcome {
        guard !closed.load(ordering: .acquiring) else { throw StorageError.unavailable("collection is closed") }
        if isDimensionPending { try await decideDimension(request) }
        let prepared = try prepare(request)
        await writerLock.lock()
        let lsn: LSN
        let affected: Int
        do {
            await tail.waitForRoom(prepared.newRecordCount)
            (lsn, affected) = try state.withLock { (state) throws -> (LSN, Int) in
                let (operations, affected) = try resolve(prepared, state)
                guard !operations.isEmpty else { return (0, 0) }
                try checkCapacity(operations, state)
                let payload = BatchCodec.encode(operations)
                guard payload.count <= StorageLimits.maximumEntryBytes else {
                    throw StorageError.invalidArgument("batch encodes to \(payload.count) bytes, over \(StorageLimits.maximumEntryBytes)")
                }
                let lsn = try wal.enqueue(kind: EntryKind.batch, payload: payload)
                try apply(operations, &state)
                return (lsn, affected)
            }
        } catch {
            writerLock.unlock()
            throw error
        }
        writerLock.unlock()
        guard lsn > 0 else { return WriteOutcome(lsn: wal.durableLSN, affected: 0) }
        indexer?.wake()
        try await wal.waitDurable(lsn)
        if wal.bytesSinceCheckpoint >= StorageLimits.checkpointWALBytes { scheduleCheckpoint() }
        return WriteOutcome(lsn: lsn, affected: affected)
    }

    /// A collection created without a dimension takes the one of its first
    /// vectors (ChromaDB's behaviour): the manifest is rewritten with it, durably,
    /// before anything is written, and an empty generation of that shape replaces
    /// the placeholder.
    private func decideDimension(_ request: WriteRequest) async throws {
        let records: [RecordInput]
        switch request {
        case .add(let list), .upsert(let list), .update(let list, _): records = list
        case .delete, .deleteWhere: return
        }
        guard let dimension = records.first(where: { $0.vector != nil })?.vector?.count, dimension > 0 else { return }
        await writerLock.lock()
        defer { writerLock.unlock() }
        guard isDimensionPending else { return }
        var configuration = self.configuration
        configuration.dimension = dimension
        let layout = try configuration.layout()
        let manifest = Manifest(
            configuration: configuration, generation: 0, checkpointLSN: wal.lastLSN, index: HNSWState(), heapUsedBytes: 0,
            liveRecords: 0, files: [:])
        try Files.writeAtomically(directory + "/" + Manifest.fileName, try manifest.encoded())
        let generation = try Generation.empty(layout: layout)
        tail.prepareCodes(dimensions: dimension)
        current.withLock { $0 = generation }
        state.withLock {
            $0.configuration = configuration
            $0.checkpointLSN = manifest.checkpointLSN
        }
    }

    /// Renames the collection or replaces its metadata, durably (through the WAL).
    public func modify(name: String?, metadata: Metadata?) async throws {
        if let name { try CollectionConfiguration.validateName(name) }
        if let metadata { try MetadataCodec.validate(metadata) }
        await writerLock.lock()
        let lsn: LSN
        do {
            lsn = try state.withLock { (state) throws -> LSN in
                var configuration = state.configuration
                if let name { configuration.name = name }
                if let metadata { configuration.metadata = metadata.mapValues(TaggedValue.init) }
                let payload: [UInt8]
                do { payload = Array(try JSONEncoder().encode(configuration)) } catch {
                    throw StorageError.invalidArgument("configuration does not encode: \(error)")
                }
                let lsn = try wal.enqueue(kind: EntryKind.configuration, payload: payload)
                state.configuration = configuration
                return lsn
            }
        } catch {
            writerLock.unlock()
            throw error
        }
        writerLock.unlock()
        try await wal.waitDurable(lsn)
    }

    /// Validated input in stored form: everything that needs no collection state.
    struct Prepared {
        enum Kind { case add, upsert, update(ignoreMissing: Bool), delete, deleteWhere }
        var kind: Kind
        var records: [PreparedRecord] = []
        var deleteIds: [String] = []
        var filter: (WhereFilter?, DocumentFilter?) = (nil, nil)
        var newRecordCount: Int {
            switch kind {
            case .add, .upsert, .update: return records.count
            case .delete, .deleteWhere: return 0
            }
        }
    }

    struct PreparedRecord {
        var id: String
        var halves: [UInt16]?
        var document: [UInt8]?
        var hasDocument: Bool
        var metadata: [UInt8]?
    }

    private func prepare(_ request: WriteRequest) throws -> Prepared {
        switch request {
        case .add(let records): return Prepared(kind: .add, records: try prepareRecords(records, needVectors: true))
        case .upsert(let records): return Prepared(kind: .upsert, records: try prepareRecords(records, needVectors: true))
        case .update(let records, let ignoreMissing):
            return Prepared(kind: .update(ignoreMissing: ignoreMissing), records: try prepareRecords(records, needVectors: false))
        case .delete(let ids):
            try checkBatch(ids)
            return Prepared(kind: .delete, deleteIds: ids)
        case .deleteWhere(let filter, let documentFilter):
            do {
                try filter?.validate()
                try documentFilter?.validate()
            } catch { throw StorageError(error) }
            guard filter != nil || documentFilter != nil else {
                throw StorageError.invalidArgument("delete needs ids or a filter")
            }
            return Prepared(kind: .deleteWhere, filter: (filter, documentFilter))
        }
    }

    private func checkBatch(_ ids: [String]) throws {
        guard !ids.isEmpty else { throw StorageError.invalidArgument("the batch is empty") }
        guard ids.count <= StorageLimits.maximumBatchRecords else {
            throw StorageError.invalidArgument("batch of \(ids.count) records exceeds \(StorageLimits.maximumBatchRecords)")
        }
        var seen = Set<String>()
        seen.reserveCapacity(ids.count)
        for id in ids {
            let bytes = id.utf8.count
            guard bytes > 0, bytes <= StorageLimits.maximumIdBytes else {
                throw StorageError.invalidArgument("id '\(id.prefix(60))' must be 1...\(StorageLimits.maximumIdBytes) bytes")
            }
            guard seen.insert(id).inserted else { throw StorageError.invalidArgument("id '\(id.prefix(60))' appears twice in the batch") }
        }
    }

    private func prepareRecords(_ records: [RecordInput], needVectors: Bool) throws -> [PreparedRecord] {
        try checkBatch(records.map(\.id))
        let index = current.withLock { $0 }.index
        var prepared: [PreparedRecord] = []
        prepared.reserveCapacity(records.count)
        // The bulk of a write's CPU, outside every lock: with reads first, paced like
        // the indexer while queries run (the default acknowledges at full speed).
        let readers = tail.readsFirst && tail.hasRecentReaders
        var pacer = ReaderPacer()
        for record in records {
            pacer.step(readers: readers)
            var halves: [UInt16]? = nil
            if let vector = record.vector {
                do { halves = try vector.withUnsafeBufferPointer { (buffer) throws(IndexError) in try index.storedForm(buffer) } } catch {
                    throw StorageError.invalidArgument("record '\(record.id.prefix(60))': \(StorageError(error).description.replacingOccurrences(of: "invalid argument: ", with: ""))")
                }
            } else if needVectors {
                throw StorageError.invalidArgument("record '\(record.id.prefix(60))' has no vector")
            }
            if let document = record.document, document.utf8.count > StorageLimits.maximumDocumentBytes {
                throw StorageError.invalidArgument("record '\(record.id.prefix(60))': document exceeds \(StorageLimits.maximumDocumentBytes) bytes")
            }
            var metadata: [UInt8]? = nil
            if let values = record.metadata {
                do { try MetadataCodec.validate(values) } catch {
                    throw StorageError.invalidArgument("record '\(record.id.prefix(60))': \(error)")
                }
                metadata = MetadataCodec.encode(values)
            }
            prepared.append(PreparedRecord(
                id: record.id, halves: halves, document: record.document.map { Array($0.utf8) },
                hasDocument: record.document != nil, metadata: metadata))
        }
        return prepared
    }

    /// Turns a prepared request into puts and deletes of whole records, checking
    /// it against the current state. Throws before anything is logged or applied.
    private func resolve(_ prepared: Prepared, _ state: MutationState) throws -> ([ResolvedOperation], Int) {
        let generation = current.withLock { $0 }
        let emptyMetadata = MetadataCodec.encode([:])
        switch prepared.kind {
        case .add:
            for record in prepared.records where state.ids[record.id] != nil {
                throw StorageError.alreadyExists("record '\(record.id.prefix(60))' already exists")
            }
            fallthrough
        case .upsert:
            let operations = prepared.records.map { record in
                ResolvedOperation.put(
                    id: Array(record.id.utf8), halves: record.halves ?? [], document: record.document,
                    metadata: record.metadata ?? emptyMetadata)
            }
            return (operations, operations.count)
        case .update(let ignoreMissing):
            var operations: [ResolvedOperation] = []
            for record in prepared.records {
                guard let slot = state.ids[record.id], let view = generation.records.record(slot) else {
                    if ignoreMissing { continue }
                    throw StorageError.notFound("record '\(record.id.prefix(60))' does not exist")
                }
                let halves = record.halves ?? storedHalves(generation, slot)
                let document = record.hasDocument ? record.document : view.document.map { Array($0) }
                let metadata = record.metadata ?? Array(view.metadata)
                operations.append(.put(id: Array(record.id.utf8), halves: halves, document: document, metadata: metadata))
            }
            return (operations, operations.count)
        case .delete:
            let operations = prepared.deleteIds.filter { state.ids[$0] != nil }.map { ResolvedOperation.delete(id: Array($0.utf8)) }
            return (operations, operations.count)
        case .deleteWhere:
            let (filter, documentFilter) = prepared.filter
            var operations: [ResolvedOperation] = []
            for (id, slot) in state.ids where matches(generation, slot, filter, documentFilter) {
                operations.append(.delete(id: Array(id.utf8)))
            }
            return (operations, operations.count)
        }
    }

    private func storedHalves(_ generation: Generation, _ slot: UInt32) -> [UInt16] {
        let base = generation.index.regions.vectors.base.assumingMemoryBound(to: UInt16.self)
            + Int(slot) * layout.vectorStrideHalves
        return Array(UnsafeBufferPointer(start: base, count: layout.dimensions))
    }

    /// True if `slot` stores exactly these f16 values.
    private func hasVector(_ generation: Generation, _ slot: UInt32, _ halves: [UInt16]) -> Bool {
        guard halves.count == layout.dimensions else { return false }
        let stored = generation.index.regions.vectors.base.assumingMemoryBound(to: UInt16.self)
            + Int(slot) * layout.vectorStrideHalves
        return halves.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return false }
            return memcmp(stored, base, layout.dimensions * MemoryLayout<UInt16>.size) == 0
        }
    }

    private func checkCapacity(_ operations: [ResolvedOperation], _ state: MutationState) throws {
        let available = state.freeSlots.count + (layout.capacity - Int(state.nextSlot))
        let allPuts = operations.reduce(0) { count, operation in
            if case .put = operation { return count + 1 }
            return count
        }
        guard allPuts > available else { return }  // the common case: no vector comparisons here, apply does them
        // Near capacity: a put that keeps its record's vector is replaced in place and needs no slot.
        let generation = current.withLock { $0 }
        let puts = operations.reduce(0) { count, operation in
            guard case .put(let id, let halves, _, _) = operation else { return count }
            if let existing = state.ids[String(decoding: id, as: UTF8.self)], hasVector(generation, existing, halves) {
                return count
            }
            return count + 1
        }
        guard puts <= available else {
            throw StorageError.resourceExhausted(
                "collection capacity: \(puts) new records, room for \(available) (capacity \(layout.capacity) slots)")
        }
    }

    /// Applies resolved operations in memory. Used by live writes (after the WAL
    /// append) and by recovery. New versions are published before old ones are
    /// retired, so a concurrent reader sees a record once or (briefly) in both
    /// versions, never neither; readers de-duplicate by id. A put that keeps a
    /// record's vector (a re-run batch, a metadata update) replaces the record in
    /// its slot instead: it keeps its place in the graph, with nothing to re-link
    /// and no tombstone left behind.
    private func apply(_ operations: [ResolvedOperation], _ state: inout MutationState) throws {
        let generation = current.withLock { $0 }
        var published: [UInt32] = []
        var retired: [UInt32] = []
        for operation in operations {
            switch operation {
            case .put(let idBytes, let halves, let document, let metadata):
                let id = String(decoding: idBytes, as: UTF8.self)
                if let existing = state.ids[id], hasVector(generation, existing, halves) {
                    try generation.records.store(slot: existing, id: idBytes, document: document, metadata: metadata)
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
            case .delete(let idBytes):
                let id = String(decoding: idBytes, as: UTF8.self)
                if let old = state.ids.removeValue(forKey: id) {
                    retired.append(old)
                    state.liveRecords -= 1
                }
            }
        }
        publishToTail(published, generation)
        for slot in retired { retire(slot, generation, &state) }
    }

    /// Sign codes rank the tail by angle, which is every metric's order only for
    /// unit vectors: the first vector of another length (under l2 or ip) turns the
    /// code ranking off for this collection until the process restarts.
    private let tailCodesRank = Atomic<Bool>(true)

    private func publishToTail(_ slots: [UInt32], _ generation: Generation) {
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

    private func retire(_ slot: UInt32, _ generation: Generation, _ state: inout MutationState) {
        generation.records.setLive(slot, false)
        if generation.index.isLinked(slot) {
            generation.index.markDeleted(slot)
        }
        // Not linked yet: the indexer finds it dead in the tail and puts it in limbo.
    }

    // MARK: - Indexing (called by the indexer threads)

    /// Links up to `maximum` tail records into the graph; returns how many it handled.
    @discardableResult
    func indexSome(maximum: Int) -> Int {
        indexLock.withShared {
            let claimed = tail.claim(maximum)
            guard !claimed.isEmpty else { return 0 }
            let generation = current.withLock { $0 }
            var linked = 0
            for (_, slot) in claimed {
                if generation.records.isLive(slot) && !generation.index.isLinked(slot) {
                    do {
                        try generation.index.link(slot: slot)
                        linked += 1
                    } catch {
                        StorageLog.write("indexer: slot \(slot) of \(directory) not linked: \(error)")
                    }
                }
                state.withLock { state in
                    guard !generation.records.isLive(slot) else { return }
                    if generation.index.isLinked(slot) {
                        generation.index.markDeleted(slot)
                    } else if !state.limbo.contains(slot) {
                        state.limbo.append(slot)
                    }
                }
            }
            state.withLock { $0.linkedSinceRepair += linked }
            tail.complete(claimed.map(\.position))
            return claimed.count
        }
    }

    /// Background upkeep: reclaim deleted slots, and reconnect nodes that
    /// back-link pruning orphaned. With `busy` (records still waiting to be
    /// linked) only the urgent part runs: tombstones outnumbering half the live
    /// graph make every walk slower, so they are reclaimed even mid-ingest.
    func maintain(busy: Bool) {
        let generation = current.withLock { $0 }
        let (limbo, linkedSinceRepair) = state.withLock { ($0.limbo, $0.linkedSinceRepair) }
        let deleted = generation.index.deletedCount
        let live = generation.index.liveCount
        // Under reads tombstones cost every query, so they go sooner (in paced steps).
        let readers = tail.hasRecentReaders
        let urgent = deleted >= max(1_024, live / (readers ? 8 : 2))
        let due = urgent || (!busy && deleted >= max(256, live / 20))
        let freeLimbo = !limbo.isEmpty && (!busy || limbo.count >= 1_024)
        let repair = !busy && linkedSinceRepair > 0
        guard due || freeLimbo || repair else { return }
        indexLock.withExclusive {
            var freed: [UInt32] = []
            if due {  // includes its grace period
                var pacer = ReaderPacer()
                freed = generation.index.reclaimDeleted { pacer.step(readers: tail.hasRecentReaders) }
            }
            if freeLimbo {
                generation.index.gate.synchronize()
                freed += limbo
            }
            if repair { generation.index.repairConnectivity() }
            state.withLock { state in
                if freeLimbo { state.limbo.removeAll { limbo.contains($0) } }
                state.freeSlots.append(contentsOf: freed)
                if repair { state.linkedSinceRepair = 0 }
            }
        }
    }

    var needsIndexing: Bool { tail.hasUnclaimed }

    /// A query ran within `StorageLimits.readerActivityWindowMilliseconds`.
    var hasRecentReaders: Bool { tail.hasRecentReaders }

    // MARK: - Reads

    private func matches(_ generation: Generation, _ slot: UInt32, _ filter: WhereFilter?, _ documentFilter: DocumentFilter?)
        -> Bool
    {
        guard generation.records.isLive(slot), let view = generation.records.record(slot) else { return false }
        if let filter, !filter.matches(view.metadata) { return false }
        if let documentFilter, !documentFilter.matches(view.document) { return false }
        return true
    }

    private func view(_ generation: Generation, _ slot: UInt32, include: Include, distance: Float?) -> RecordView? {
        guard let record = generation.records.record(slot) else { return nil }
        var result = RecordView(id: String(decoding: record.id, as: UTF8.self))
        if include.contains(.documents), let document = record.document {
            result.document = String(decoding: document, as: UTF8.self)
        }
        if include.contains(.metadatas) { result.metadata = try? MetadataCodec.decode(record.metadata) }
        if include.contains(.vectors) {
            var vector = [Float](repeating: 0, count: layout.dimensions)
            vector.withUnsafeMutableBufferPointer { generation.index.readVector(slot, into: $0) }
            result.vector = vector
        }
        if include.contains(.distances) { result.distance = distance }
        return result
    }

    /// Nearest records to each query vector. A filtered query returns the true
    /// top-k among matching records as far as HNSW allows, and never fewer than k
    /// when k match (the planner falls back to an exact scan).
    public func query(
        _ vectors: [[Float]], k: Int, filter: WhereFilter? = nil, documentFilter: DocumentFilter? = nil,
        include: Include = [.documents, .metadatas, .distances], ef: Int? = nil
    ) throws -> [[RecordView]] {
        guard (1...HNSWIndex.maximumK).contains(k) else {
            throw StorageError.invalidArgument("k must be in 1...\(HNSWIndex.maximumK), got \(k)")
        }
        if let ef, !HNSWParameters.efRange.contains(ef) { throw StorageError.invalidArgument("ef must be in \(HNSWParameters.efRange)") }
        do {
            try filter?.validate()
            try documentFilter?.validate()
        } catch { throw StorageError(error) }
        if isDimensionPending { return vectors.map { _ in [] } }
        tail.noteReader()  // writers now keep the tail this query scans small
        let generation = current.withLock { $0 }
        let token = generation.index.gate.enter()
        defer { generation.index.gate.exit(token) }
        let filtered = filter != nil || documentFilter != nil
        let rankByCode = !filtered && tailCodesRank.load(ordering: .relaxed)
        // Filtered queries are exact over the tail: every matching record counts.
        let snapshot = rankByCode ? nil : tail.snapshot()
        var results: [[RecordView]] = []
        results.reserveCapacity(vectors.count)
        for vector in vectors {
            guard vector.count == layout.dimensions else {
                throw StorageError.invalidArgument("query vector has \(vector.count) dimensions, the collection has \(layout.dimensions)")
            }
            // Taken before the graph search, so a record the indexer links meanwhile is found by one or the other.
            let pending = snapshot ?? tailCandidates(vector, k: k)
            let hits = try nearest(generation, vector, k: k, ef: ef, filter: filter, documentFilter: documentFilter, pending: pending)
            results.append(hits.compactMap { view(generation, $0.slot, include: include, distance: $0.distance) })
        }
        return results
    }

    /// Tail records worth scoring exactly for an unfiltered query: all of them
    /// while the tail is small, else the `tailRerankCount` nearest by sign code.
    private func tailCandidates(_ vector: [Float], k: Int) -> [UInt32] {
        let keep = StorageLimits.tailRerankCount(k: k, tailRecords: tail.count)
        let words = SignCodes.words(dimensions: layout.dimensions)
        let dimensions = layout.dimensions
        let ranked = withUnsafeTemporaryAllocation(of: UInt64.self, capacity: words) { code -> [UInt32]? in
            vector.withUnsafeBufferPointer { query -> [UInt32]? in
                guard let base = code.baseAddress, let floats = query.baseAddress else { return nil }
                SignCodes.encode(floats: floats, dimensions: dimensions, into: base)
                return tail.nearestByCode(base, keep: keep, minimumCount: 2 * keep)
            }
        }
        return ranked ?? tail.snapshot()
    }

    private func nearest(
        _ generation: Generation, _ vector: [Float], k: Int, ef: Int?, filter: WhereFilter?, documentFilter: DocumentFilter?,
        pending: [UInt32]
    ) throws -> [SearchHit] {
        let filtered = filter != nil || documentFilter != nil
        let accept: (UInt32) -> Bool = { [self] slot in
            filtered ? matches(generation, slot, filter, documentFilter) : generation.records.isLive(slot)
        }
        var hits: [SearchHit]
        do {
            hits = try vector.withUnsafeBufferPointer { (buffer) throws(IndexError) -> [SearchHit] in
                var found = try generation.index.search(
                    buffer, k: k, ef: ef, filter: filtered ? SlotFilter(matches: accept) : nil).hits
                if filtered {
                    found += try generation.index.scan(buffer, slots: pending, k: k, accept: accept)
                } else {
                    // Score the whole tail first and check liveness only for the winners: the
                    // check is a random read of the slot table, the scan a sequential read of
                    // vectors. A margin covers tail records retired since the snapshot.
                    found += try generation.index.scan(buffer, slots: pending, k: k + 32, accept: nil)
                }
                return found
            }
        } catch { throw StorageError(error) }
        hits.sort { $0.distance < $1.distance }
        // Same slot twice (graph and tail) or two versions of one id (a concurrent
        // upsert): keep the first. k is small, so linear checks beat hashing.
        var result: [SearchHit] = []
        var resultIds: [UnsafeRawBufferPointer] = []
        result.reserveCapacity(k)
        for hit in hits where result.count < k && generation.records.isLive(hit.slot) {
            guard !result.contains(where: { $0.slot == hit.slot }), let record = generation.records.record(hit.slot) else {
                continue
            }
            guard !resultIds.contains(where: { $0.elementsEqual(record.id) }) else { continue }
            result.append(hit)
            resultIds.append(record.id)
        }
        return result
    }

    /// Records by id (in the order asked, missing ids skipped) and/or filter,
    /// in slot order otherwise, with offset and limit applied after filtering.
    public func get(
        ids: [String]? = nil, filter: WhereFilter? = nil, documentFilter: DocumentFilter? = nil, offset: Int = 0,
        limit: Int? = nil, include: Include = [.documents, .metadatas]
    ) throws -> [RecordView] {
        guard offset >= 0 else { throw StorageError.invalidArgument("offset must not be negative") }
        if let limit, limit < 0 { throw StorageError.invalidArgument("limit must not be negative") }
        if let ids, ids.count > StorageLimits.maximumBatchRecords {
            throw StorageError.invalidArgument("\(ids.count) ids exceed \(StorageLimits.maximumBatchRecords)")
        }
        do {
            try filter?.validate()
            try documentFilter?.validate()
        } catch { throw StorageError(error) }
        if isDimensionPending { return [] }
        let generation = current.withLock { $0 }
        let token = generation.index.gate.enter()
        defer { generation.index.gate.exit(token) }
        let candidates: [UInt32]
        if let ids {
            var seen = Set<String>()
            let wanted = ids.filter { seen.insert($0).inserted }
            candidates = state.withLock { state in wanted.compactMap { state.ids[$0] } }
        } else {
            candidates = Array(0..<UInt32(generation.index.slotHighWater))
        }
        var results: [RecordView] = []
        var skipped = 0
        for slot in candidates where matches(generation, slot, filter, documentFilter) {
            if let limit, results.count >= limit { break }
            if skipped < offset {
                skipped += 1
                continue
            }
            if let record = view(generation, slot, include: include, distance: nil) { results.append(record) }
        }
        return results
    }

    public func stats() -> CollectionStats {
        let generation = current.withLock { $0 }
        let snapshot = state.withLock { $0 }
        return CollectionStats(
            liveRecords: snapshot.liveRecords, unindexedRecords: tail.count, indexedRecords: generation.index.liveCount,
            deletedAwaitingReclaim: generation.index.deletedCount + snapshot.limbo.count,
            slotHighWater: generation.index.slotHighWater, lastLSN: wal.lastLSN, durableLSN: wal.durableLSN,
            checkpointLSN: snapshot.checkpointLSN, generation: generation.number, walBytes: wal.bytesSinceCheckpoint,
            diskBytes: Self.diskUsage(directory))
    }

    static func diskUsage(_ path: String) -> Int { Files.treeSize(path) }

    // MARK: - Checkpoints and snapshots

    private func scheduleCheckpoint() {
        guard checkpointRunning.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else { return }
        Task.detached { [self] in
            defer { checkpointRunning.store(false, ordering: .releasing) }
            do { try await checkpoint() } catch { StorageLog.write("checkpoint of \(directory) failed: \(error)") }
        }
    }

    /// Folds the WAL into a new generation of files: pause writers and the
    /// indexer, write the generation, switch to it, resume; then fsync it,
    /// replace the manifest (rename + directory fsync) and delete the WAL
    /// segments and files it made redundant. Readers never wait.
    public func checkpoint() async throws {
        await checkpointLock.lock()
        defer { checkpointLock.unlock() }
        await writerLock.lock()
        let lastLSN = wal.lastLSN
        do { try await wal.waitDurable(lastLSN) } catch {
            writerLock.unlock()
            throw error
        }
        let previous = current.withLock { $0 }
        let number = previous.number + 1
        let generationDirectory = directory + "/" + Manifest.generationDirectory(number)
        let prepared: (Manifest, Generation.Dump, [WriteAheadLog.Segment])
        do {
            prepared = try await Blocking.run { [self] in
                try indexLock.withExclusive { () throws -> (Manifest, Generation.Dump, [WriteAheadLog.Segment]) in
                    try switchGeneration(previous, number: number, generationDirectory: generationDirectory, lastLSN: lastLSN)
                }
            }
        } catch {
            writerLock.unlock()
            Files.removeTree(generationDirectory)
            throw error
        }
        writerLock.unlock()
        let (manifest, dump, covered) = prepared
        try await Blocking.run { [self] in
            try Generation.finish(dump, directory: generationDirectory)
            try Files.writeAtomically(directory + "/" + Manifest.fileName, try manifest.encoded())
            wal.discard(covered)
            for name in Files.list(directory) where name.hasPrefix("gen-") && name != Manifest.generationDirectory(number) {
                Files.removeTree(directory + "/" + name)
            }
            try Files.syncDirectory(directory)
        }
        state.withLock { $0.checkpointLSN = lastLSN }
    }

    private func switchGeneration(_ previous: Generation, number: UInt64, generationDirectory: String, lastLSN: LSN)
        throws -> (Manifest, Generation.Dump, [WriteAheadLog.Segment])
    {
        let snapshot = state.withLock { $0 }
        let dump = try previous.dump(to: generationDirectory, slotHighWater: Int(snapshot.nextSlot))
        let manifest = Manifest(
            configuration: snapshot.configuration, generation: number, checkpointLSN: lastLSN,
            index: previous.index.state, heapUsedBytes: dump.heapUsedBytes, liveRecords: snapshot.liveRecords,
            files: dump.files)
        let next = try Generation.open(directory: generationDirectory, manifest: manifest, layout: layout, verify: false)
        let covered = try wal.rotate()
        current.withLock { $0 = next }
        return (manifest, dump, covered)
    }

    /// What a snapshot holds: every write up to `lsn`, which leaves `records` live records.
    public struct SnapshotPosition: Sendable, Equatable {
        public var lsn: LSN
        public var records: Int
    }

    /// Writes a point-in-time copy of the collection into `destination` (which
    /// must not exist): the generation's immutable files hard-linked, the WAL
    /// copied up to the last acknowledged batch. It opens to exactly that state.
    @discardableResult
    public func snapshot(to destination: String) async throws -> SnapshotPosition {
        await checkpointLock.lock()
        defer { checkpointLock.unlock() }
        await writerLock.lock()
        let lastLSN = wal.lastLSN
        // Read with the writer lock held: writes are logged and applied under it, so this
        // count is exactly the state at lastLSN (reading it afterwards would include
        // writes the snapshot does not hold).
        let records = count
        do { try await wal.waitDurable(lastLSN) } catch {
            writerLock.unlock()
            throw error
        }
        let segments = wal.durableSegments()
        writerLock.unlock()
        try await Blocking.run { [self] in
            guard !Files.exists(destination) else { throw StorageError.alreadyExists("\(destination) exists") }
            let staging = destination + ".partial"
            Files.removeTree(staging)
            try Files.makeDirectories(staging + "/wal")
            let manifest = try Manifest.read(directory + "/" + Manifest.fileName)
            if !manifest.files.isEmpty {
                let name = Manifest.generationDirectory(manifest.generation)
                try Files.makeDirectory(staging + "/" + name)
                for file in manifest.files.keys {
                    try Files.linkOrCopy(directory + "/" + name + "/" + file, staging + "/" + name + "/" + file)
                }
            }
            for segment in segments {
                let target = staging + "/wal/" + WriteAheadLog.segmentName(segment.firstLSN)
                try Files.copyPrefix(segment.path, target, bytes: segment.sizeBytes)
            }
            try Files.writeAtomically(staging + "/" + Manifest.fileName, try manifest.encoded())
            try Files.rename(staging, destination)
            try Files.syncDirectory(Files.directoryName(destination))
        }
        return SnapshotPosition(lsn: lastLSN, records: records)
    }

    /// Checkpoints (so the next open replays nothing) and stops accepting writes.
    public func close() async throws {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        try await checkpoint()
    }
}
