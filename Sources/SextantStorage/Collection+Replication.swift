import SextantConcurrency
import SextantKernels

/// The log as a stream: a shipper reads a primary's durable entries as they
/// are in its WAL, and a follower applies them to its own copy of the
/// collection, through its own WAL, in the same order and with the same LSNs.
/// The entries are logical (records by id, resolved to whole puts and
/// deletes), so the follower's slots and graph are its own and its answers are
/// those of the same records.
extension Collection {
    package typealias LogCursor = WALReadCursor
    package typealias LogRead = WALDurableRead

    /// Every entry at or below it is acknowledged and on disk.
    public var durableLSN: LSN { wal.durableLSN }
    /// The newest entry in this collection's log (on a follower: the newest applied).
    public var lastLSN: LSN { wal.lastLSN }

    /// Durable entries from the cursor on, as frames (see `WriteAheadLog.readDurable`).
    package func readDurableLog(_ cursor: LogCursor, maximumBytes: Int = StorageLimits.maximumShippedChunkBytes) throws -> LogRead {
        try wal.readDurable(cursor, maximumBytes: maximumBytes)
    }

    /// Tells checkpoints which entries a shipper still has to send (0: no shipper).
    public func setFirstUnshippedLSN(_ lsn: LSN) {
        firstUnshippedLSN.store(lsn, ordering: .releasing)
    }

    /// Marks a read replica's collection: from now on only `applyShipped` changes it.
    public func followShippedLog() { followsShippedLog.store(true, ordering: .relaxed) }

    /// A follower found nothing newer in the shipped log just now.
    public func noteReplicaCaughtUp() {
        replicaCaughtUpMilliseconds.store(MonotonicClock.coarseMilliseconds(), ordering: .relaxed)
    }

    /// Milliseconds since a follower last found nothing newer to apply; nil before the first time.
    public var replicaLagMilliseconds: UInt64? {
        let caughtUp = replicaCaughtUpMilliseconds.load(ordering: .relaxed)
        return caughtUp == 0 ? nil : MonotonicClock.coarseMilliseconds() &- caughtUp
    }

    /// Applies frames shipped from a primary's log: entries at or below this
    /// collection's last LSN are skipped (a chunk read again after a restart),
    /// the next must follow it exactly. Each entry is logged here under its own
    /// LSN before it is applied, so a follower killed at any moment reopens at
    /// a whole entry and asks for the one after. Returns the last LSN in the log.
    /// `dimension`: the primary's decided dimension, for a collection still waiting for one.
    @discardableResult
    public func applyShipped(_ frames: [UInt8], dimension: Int = 0) async throws -> LSN {
        guard !closed.load(ordering: .acquiring) else { throw StorageError.unavailable("collection is closed") }
        let entries = frames.withUnsafeBytes { WALFrame.scan($0) }
        guard entries.last?.endOffset == frames.count else {
            throw StorageError.corrupted("shipped log of '\(name)': a frame after LSN \(entries.last?.lsn ?? 0) is torn or fails its checksum")
        }
        var last: LSN = 0
        for entry in entries {
            let payload = Array(frames[entry.payloadRange])
            while true {
                let step = try await writerLock.withLock { () throws -> WriteStep in
                    let next = wal.lastLSN + 1
                    if entry.lsn < next { return .applied(lsn: 0, affected: 0) }
                    guard entry.lsn == next else {
                        throw StorageError.failedPrecondition("shipped log of '\(name)' jumps from LSN \(next - 1) to \(entry.lsn)")
                    }
                    switch entry.kind {
                    case EntryKind.batch:
                        if isDimensionPending {
                            guard dimension > 0 else {
                                throw StorageError.failedPrecondition("'\(name)' has no dimension yet and its primary named none")
                            }
                            try decideDimensionLocked(dimension)
                        }
                        let operations = try BatchCodec.decode(payload, dimensions: layout.dimensions)
                        let puts = operations.reduce(0) { count, operation in
                            if case .put = operation { return count + 1 }
                            return count
                        }
                        await tail.waitForRoom(puts)
                        return try state.withLock { (state) throws -> WriteStep in
                            let view = PlanView(state: state, generation: current.withLock { $0 })
                            if let growth = try WritePlan.checkCapacity(WritePlan.Resolved(operations: operations), in: view) {
                                return .needs(growth)
                            }
                            let lsn = try wal.enqueue(kind: EntryKind.batch, payload: payload)
                            precondition(lsn == entry.lsn, "a follower logs the primary's entry under the primary's LSN")
                            try apply(operations, &state)
                            appliedLSNValue.store(lsn, ordering: .releasing)
                            return .applied(lsn: lsn, affected: operations.count)
                        }
                    case EntryKind.configuration:
                        let configuration = try decodeConfiguration(payload, lsn: entry.lsn)
                        let lsn = try wal.enqueue(kind: EntryKind.configuration, payload: payload)
                        precondition(lsn == entry.lsn, "a follower logs the primary's entry under the primary's LSN")
                        applyConfiguration(configuration)
                        appliedLSNValue.store(lsn, ordering: .releasing)
                        return .applied(lsn: lsn, affected: 0)
                    default:
                        throw StorageError.corrupted("shipped log of '\(name)': entry \(entry.lsn) has unknown kind \(entry.kind)")
                    }
                }
                switch step {
                case .applied(let lsn, _):
                    if lsn > 0 { last = lsn }
                case .needs(let growth):
                    try await checkpoint(reservingSlots: growth.slots)
                    continue
                }
                break
            }
        }
        guard last > 0 else { return wal.lastLSN }
        indexer?.wake()
        try await wal.waitDurable(last)
        if wal.bytesSinceCheckpoint >= StorageLimits.checkpointWALBytes { scheduleCheckpoint() }
        return last
    }
}
