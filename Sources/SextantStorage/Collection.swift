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
    /// Slots the current generation reserves (grows at a checkpoint).
    public var capacitySlots: Int
    /// Bytes in use per part: float16 vectors, graph + node table, codes, record heap.
    public var vectorBytes: Int
    public var graphBytes: Int
    public var codeBytes: Int
    public var heapBytes: Int
    /// What a search keeps resident: graph and codes, or graph and vectors
    /// without quantization (`HNSWIndex.residentSearchBytes`).
    public var residentSearchBytes: Int
}

/// One collection: records (id, float16 vector, document, metadata), their
/// HNSW index, optionally a BM25 index of their documents, the WAL that makes
/// writes durable, and checkpoints.
///
/// The class is split by concern: this file holds its state, open, replay and
/// close; `Collection+Write.swift` the write path (planned by `WritePlan`,
/// which needs no disk), `Collection+Read.swift` queries and gets,
/// `Collection+Search.swift` lexical and hybrid search over the text index
/// (`TextIndex.swift`), `Collection+Indexing.swift` the indexer's calls, and
/// `Collection+Checkpoint.swift` checkpoints and snapshots.
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
    /// The file system holding the collection's files (the WAL's).
    var disk: Files { wal.disk }
    let tail: UnindexedTail
    /// BM25 over the documents when the configuration asks for it.
    let text = CollectionTextIndex()
    /// Sparse vectors' indexes, one per key the configuration declares.
    let sparse = CollectionSparseIndexes()
    /// Exact indexes over the declared metadata fields.
    let payload = CollectionPayloadIndexes()
    /// Records past which a field filtered on often enough is indexed by itself
    /// (`StorageLimits.automaticPayloadIndexRecords`; 0: never). Set by the engine.
    public let automaticIndexRecords = Atomic<Int>(StorageLimits.automaticPayloadIndexRecords)
    /// Filters on each key no index answered, since the last automatic index.
    let unindexedFilterUses = Mutex<[String: Int]>([:])
    let automaticIndexRunning = Atomic<Bool>(false)
    /// Per metadata key, the value types records have held under it
    /// (`MetadataTypes`): grows with writes, written with each checkpoint.
    let fieldTypes = Mutex<[String: UInt8]>([:])
    /// Shared by linking (indexer) and exclusive for reclaim and checkpoint.
    let indexLock = ReadWriteLock()
    let writerLock = AsyncLock()
    let checkpointLock = AsyncLock()
    let current: Mutex<Generation>
    let state: Mutex<MutationState>
    let closed = Atomic<Bool>(false)
    let checkpointRunning = Atomic<Bool>(false)
    let decidedDimension: Atomic<Int>
    /// Sign codes rank the tail by angle, which is every metric's order only for
    /// unit vectors: the first vector of another length (under l2 or ip) turns the
    /// code ranking off for this collection until the process restarts.
    let tailCodesRank = Atomic<Bool>(true)
    /// The first LSN a log shipper has not yet sent (0: none ships this
    /// collection): checkpoints keep the WAL segments from it on.
    package let firstUnshippedLSN = Atomic<UInt64>(0)
    /// On a read replica: CLOCK_MONOTONIC_COARSE milliseconds when the
    /// follower last found nothing newer in the shipped log (0: never yet).
    package let replicaCaughtUpMilliseconds = Atomic<UInt64>(0)
    /// The newest batch whose records readers can see (set after its apply,
    /// unlike the WAL's last LSN, which moves before it): what `min_lsn` waits for.
    let appliedLSNValue = Atomic<UInt64>(0)
    /// A read replica's collection: only its primary's shipped log changes it.
    /// Its own writes, and the automatic payload indexes its queries would
    /// ask for, would take LSNs that belong to the primary's next entries.
    let followsShippedLog = Atomic<Bool>(false)

    /// Refuses a change made here to a collection that follows a shipped log.
    func refuseIfFollowing() throws {
        if followsShippedLog.load(ordering: .relaxed) {
            throw StorageError.failedPrecondition("collection '\(name)' follows its primary's shipped log: change it on the primary")
        }
    }
    public var appliedLSN: LSN { appliedLSNValue.load(ordering: .acquiring) }
    /// Awaited after a write is durable and before it is acknowledged
    /// (`sextant engine --ack-after-ship`: until it is in object storage).
    public typealias AcknowledgementGate = @Sendable (_ collection: Collection, _ lsn: LSN) async throws -> Void
    let acknowledgementGate = Mutex<AcknowledgementGate?>(nil)
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
    /// Slots the current generation reserves (grows at checkpoints as needed).
    public var reservedSlots: Int { layout.capacity }
    /// True until the first write of a collection created without a dimension.
    public var isDimensionPending: Bool { dimension == 0 }
    /// The vectors' dimension (0 until the first write decides it), read
    /// without the state lock: a write holds that lock for its whole apply,
    /// and queries that took it to learn the dimension waited behind batches
    /// (100 ms at p99 while a niced writer tokenized documents).
    public var dimension: Int { decidedDimension.load(ordering: .acquiring) }

    private init(directory: String, wal: WriteAheadLog, generation: Generation, state: MutationState, limits: TailLimits,
                 replayedOperations: Int = 0) {
        self.directory = directory
        self.wal = wal
        // Room for the whole WAL's records beside a full tail, so that replay
        // leaves them to the indexer and the open returns without linking
        // them; writers then wait at the usual bound until it catches up.
        let replayRoom = min(replayedOperations + limits.always, UnindexedTail.maximumReplayRoom)
        tail = UnindexedTail(limit: limits.always, underReads: limits.underReads,
                             largestBatch: max(StorageLimits.maximumBatchRecords, replayRoom))
        // A collection still waiting for its dimension has a one-dimensional
        // placeholder generation: its codes are sized when the first write decides.
        if state.configuration.dimension > 0 { tail.prepareCodes(dimensions: state.configuration.dimension) }
        current = Mutex(generation)
        decidedDimension = Atomic(state.configuration.dimension)
        self.state = Mutex(state)
    }

    // MARK: - Create and open

    static func create(directory: String, configuration: CollectionConfiguration, io: DurableIO, limits: TailLimits = .init())
        throws -> Collection
    {
        try CollectionConfiguration.validateName(configuration.name)
        try configuration.textIndex?.validate()
        try SparseIndexSettings.validate(configuration.sparseIndexes)
        try CollectionConfiguration.validatePayloadIndexes(configuration.payloadIndexes)
        _ = try configuration.layout()
        try io.disk.makeDirectories(directory)
        let manifest = Manifest(
            configuration: configuration, generation: 0, checkpointLSN: 0, index: HNSWState(), heapUsedBytes: 0,
            liveRecords: 0, files: [:])
        try io.disk.writeAtomically(directory + "/" + Manifest.fileName, try manifest.encoded())
        return try open(directory: directory, io: io, limits: limits)
    }

    /// Opens a collection: verifies the manifest and every data file's checksum,
    /// maps the files, and replays only the WAL entries after the checkpoint.
    package static func open(directory: String, io: DurableIO, limits: TailLimits = .init()) throws -> Collection {
        let disk = io.disk
        let manifest = try Manifest.read(directory + "/" + Manifest.fileName, disk: disk)
        let (wal, recovered) = try WriteAheadLog.open(directory: directory + "/wal", afterLSN: manifest.checkpointLSN, io: io)
        // The reservation covers what the files hold and every slot the WAL's
        // batches could still take: the log may hold writes made after the
        // collection grew past its last checkpoint.
        let replayedOperations = recovered.entries.reduce(0) { total, entry in
            total + (entry.kind == EntryKind.batch ? BatchCodec.operationCount(entry.payload) : 0)
        }
        let layout = try manifest.configuration.layout(reservedSlots: StorageLimits.reservedSlots(
            hint: manifest.configuration.capacity, slotsInUse: Int(manifest.index.slotHighWater) + replayedOperations))
        let generationDirectory = directory + "/" + Manifest.generationDirectory(manifest.generation)
        let generation = try Generation.open(
            directory: manifest.files.isEmpty ? nil : generationDirectory, manifest: manifest, layout: layout, verify: true,
            disk: disk)
        var state = MutationState(configuration: manifest.configuration, checkpointLSN: manifest.checkpointLSN)
        rebuildState(&state, generation: generation)
        let collection = Collection(directory: directory, wal: wal, generation: generation, state: state, limits: limits,
                                    replayedOperations: replayedOperations)
        if let settings = manifest.configuration.textIndex {
            let loaded = try CollectionTextIndex.load(disk: disk, directory: generationDirectory, manifest: manifest, settings: settings)
            collection.text.reset(loaded ?? collection.text.build(settings, from: generation))
        }
        let sparseSettings = manifest.configuration.sparseIndexes
        if !sparseSettings.isEmpty {
            let loaded = try CollectionSparseIndexes.load(disk: disk, directory: generationDirectory, manifest: manifest, settings: sparseSettings)
            collection.sparse.reset(sparseSettings, loaded ?? CollectionSparseIndexes.build(sparseSettings, from: generation))
        }
        // Manifests written before the types were kept: read them off the records once.
        let types = manifest.fieldTypes ?? Self.fieldTypes(of: generation)
        collection.fieldTypes.withLock { $0 = types }
        if !manifest.configuration.payloadIndexes.isEmpty {
            collection.payload.reset(CollectionPayloadIndexes.build(manifest.configuration.payloadIndexes, from: generation))
        }
        try collection.replay(recovered)
        collection.appliedLSNValue.store(wal.lastLSN, ordering: .releasing)
        collection.requeueUnlinked()
        return collection
    }

    static func fieldTypes(of generation: Generation) -> [String: UInt8] {
        var masks: [String: UInt8] = [:]
        for slot in 0..<UInt32(generation.index.slotHighWater) where generation.records.isLive(slot) {
            if let record = generation.records.record(slot) { MetadataTypes.note(record.metadata, into: &masks) }
        }
        return masks
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
        assert(state.liveRecords == state.ids.count, "one live slot per id")
    }

    private func replay(_ recovered: WriteAheadLog.Recovered) throws {
        for entry in recovered.entries {
            switch entry.kind {
            case EntryKind.batch:
                // Nothing indexes during replay; the ring was sized for the
                // WAL, so this links only when a log outgrew that room.
                // Outside the state lock: indexing takes it.
                if tail.free < StorageLimits.maximumBatchRecords { drainTailSynchronously() }
                let operations = try BatchCodec.decode(entry.payload, dimensions: layout.dimensions)
                try state.withLock { (state) throws in try apply(operations, &state) }
            case EntryKind.configuration:
                applyConfiguration(try decodeConfiguration(entry.payload, lsn: entry.lsn))
            default:
                throw StorageError.corrupted("\(wal.directory): entry \(entry.lsn) has unknown kind \(entry.kind)")
            }
        }
    }

    func decodeConfiguration(_ payload: [UInt8], lsn: LSN) throws -> CollectionConfiguration {
        do { return try JSONDecoder().decode(CollectionConfiguration.self, from: Data(payload)) } catch {
            throw StorageError.corrupted("\(wal.directory): configuration entry \(lsn) does not decode")
        }
    }

    /// A logged configuration, replayed (at open, or from a primary's shipped
    /// log): indexes it turns on are built from the records applied so far,
    /// exactly those the change saw when it was logged.
    func applyConfiguration(_ configuration: CollectionConfiguration) {
        let previous = state.withLock { state in
            defer { state.configuration = configuration }
            return state.configuration
        }
        if configuration.textIndex != previous.textIndex {
            text.reset(configuration.textIndex.map { text.build($0, from: current.withLock { $0 }) })
        }
        if configuration.payloadIndexes != previous.payloadIndexes {
            payload.reset(configuration.payloadIndexes.isEmpty
                ? nil : CollectionPayloadIndexes.build(configuration.payloadIndexes, from: current.withLock { $0 }))
        }
    }

    /// Live slots that are in no graph yet (written after the checkpoint, or
    /// unlinked when it was taken) go back to the indexer's queue.
    private func requeueUnlinked() {
        let generation = current.withLock { $0 }
        // Replay queued its own records already: a slot queued twice could be
        // linked by two indexer threads at once.
        let queued = Set(tail.snapshot())
        var pending: [UInt32] = []
        for slot in 0..<UInt32(generation.index.slotHighWater)
        where generation.records.isLive(slot) && !generation.index.isLinked(slot) && !queued.contains(slot) {
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

    /// Links the whole tail, on every core, before the open goes on: only when
    /// a WAL holds more records than the ring has room for
    /// (`UnindexedTail.maximumReplayRoom`), which the open then waits for.
    private func drainTailSynchronously() {
        DispatchQueue.concurrentPerform(iterations: max(1, ProcessInfo.processInfo.activeProcessorCount)) { _ in
            while tail.count > 0 {
                // Nothing left to claim while another thread finishes its claim.
                if indexSome(maximum: IndexerPolicy.replayDrainStep) == 0 { sched_yield() }
            }
        }
    }

    enum EntryKind {
        static let batch: UInt8 = 1
        static let configuration: UInt8 = 2
    }

    /// A collection created without a dimension takes the one of its first
    /// vectors (ChromaDB's behaviour): the manifest is rewritten with it, durably,
    /// before anything is written, and an empty generation of that shape replaces
    /// the placeholder.
    func decideDimension(_ request: WriteRequest) async throws {
        let records: [RecordInput]
        switch request {
        case .add(let list), .upsert(let list), .update(let list, _): records = list
        case .delete, .deleteWhere: return
        }
        guard let dimension = records.first(where: { $0.vector != nil })?.vector?.count, dimension > 0 else { return }
        try await writerLock.withLock { try decideDimensionLocked(dimension) }
    }

    /// The same for a known dimension (a follower learns it from its primary's
    /// description of the collection). Call with the writer lock held.
    func decideDimensionLocked(_ dimension: Int) throws {
        guard isDimensionPending else { return }
        var configuration = self.configuration
        configuration.dimension = dimension
        let layout = try configuration.layout()
        let manifest = Manifest(
            configuration: configuration, generation: 0, checkpointLSN: wal.lastLSN, index: HNSWState(), heapUsedBytes: 0,
            liveRecords: 0, files: [:])
        try disk.writeAtomically(directory + "/" + Manifest.fileName, try manifest.encoded())
        let generation = try Generation.empty(layout: layout, disk: disk)
        tail.prepareCodes(dimensions: dimension)
        current.withLock { $0 = generation }
        state.withLock {
            $0.configuration = configuration
            $0.checkpointLSN = manifest.checkpointLSN
        }
        decidedDimension.store(dimension, ordering: .releasing)
    }

    /// Checkpoints (so the next open replays nothing) and stops accepting writes.
    public func close() async throws {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        try await checkpoint()
    }
}

/// The unindexed tail's two bounds (see `StorageLimits.unindexedTailCapacity`
/// and `StorageLimits.readsFirstUnindexedTail`), carried as one setting from the
/// engine's flags down to each collection.
public struct TailLimits: Sendable, Equatable {
    /// Records a collection holds acknowledged but not yet indexed.
    public var always: Int
    /// The same while queries run; smaller when reads come first.
    public var underReads: Int

    public init(always: Int = StorageLimits.unindexedTailCapacity, underReads: Int = StorageLimits.unindexedTailCapacity) {
        self.always = always
        self.underReads = underReads
    }

    /// `--reads-first`: writers wait for the indexer while queries run.
    public static let readsFirst = TailLimits(underReads: StorageLimits.readsFirstUnindexedTail)
}
