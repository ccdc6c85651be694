import Foundation
import Logging
import SextantObjectStore
import SextantStorage

/// Sends a primary's log to object storage (`sextant engine --ship-to`): every
/// round, each collection's description when it changed, then its durable
/// WAL entries since the last round as pieces of at most
/// `StorageLimits.maximumShippedChunkBytes`, each followed by the head that
/// names it. Acknowledgements never wait for it; checkpoints keep the WAL
/// segments it has not sent (up to `StorageLimits.maximumUnshippedWALBytes`).
/// Pieces that every retained snapshot already holds are deleted.
public actor LogShipper {
    public let store: any ObjectStore
    let storage: StorageEngine
    let logger: Logger
    /// For each collection id, the LSN the oldest snapshot still kept holds:
    /// pieces at or below it are no longer needed by anyone who starts from a snapshot.
    let retainedSnapshotLSNs: @Sendable () async throws -> [String: LSN]
    /// False while this primary may not write to the location (its lease is not held).
    let mayShip: @Sendable () -> Bool

    private var cursors: [String: Collection.LogCursor] = [:]
    private var described: [String: CollectionConfiguration] = [:]
    private var lastCollectedSeconds = 0.0
    private var started = false
    /// Seconds between sweeps for pieces no snapshot needs.
    public var collectEverySeconds = 60.0

    public init(storage: StorageEngine, store: any ObjectStore, logger: Logger,
                retainedSnapshotLSNs: @escaping @Sendable () async throws -> [String: LSN] = { [:] },
                mayShip: @escaping @Sendable () -> Bool = { true }) {
        self.mayShip = mayShip
        self.storage = storage
        self.store = store
        self.logger = logger
        self.retainedSnapshotLSNs = retainedSnapshotLSNs
    }

    /// Ships what is durable now; returns the number of entries sent.
    @discardableResult
    public func shipOnce() async throws -> Int {
        guard mayShip() else { throw ReplicationError("this primary does not hold the lease on \(store.displayName): nothing is shipped") }
        var shipped = 0
        let collections = storage.list()
        let present = Set(collections.map(\.id))
        if !started {
            // Deleted while no shipper ran: the descriptions still in the store say so.
            for object in try await store.list(prefix: ShippedLog.collectionsPrefix) where object.key.hasSuffix(".json") {
                let id = String(object.key.dropFirst(ShippedLog.collectionsPrefix.count).dropLast(".json".count))
                if !present.contains(id) { try await shipDeletion(id) }
            }
            started = true
        }
        for gone in described.keys where !present.contains(gone) {
            try await shipDeletion(gone)
            described.removeValue(forKey: gone)
            cursors.removeValue(forKey: gone)
        }
        for collection in collections {
            let configuration = collection.configuration
            if described[collection.id] != configuration {
                try await store.writeJSON(ShippedCollection(configuration: configuration), ShippedLog.descriptorKey(collection.id))
                described[collection.id] = configuration
            }
            var cursor: Collection.LogCursor
            if let known = cursors[collection.id] {
                cursor = known
            } else {
                let head = try await store.readJSON(ShippedHead.self, ShippedLog.headKey(collection.id))
                let shippedThrough = head?.lastLSN ?? 0
                guard shippedThrough <= collection.lastLSN else {
                    // This primary's log ends before what it shipped: it started from
                    // an older copy without applying the shipped log first. Shipping
                    // on would give new writes the LSNs of shipped ones.
                    throw ReplicationError(
                        "collection '\(collection.name)' ends at LSN \(collection.lastLSN) but \(store.displayName) holds its log to "
                            + "\(shippedThrough): apply the shipped log first (start with an empty data folder to restore it)")
                }
                cursor = Collection.LogCursor(nextLSN: shippedThrough + 1)
                collection.setFirstUnshippedLSN(cursor.nextLSN)
            }
            reading: while true {
                switch try collection.readDurableLog(cursor) {
                case .nothing:
                    break reading
                case .gap(let oldest):
                    guard oldest > cursor.nextLSN else { break reading }
                    logger.error("collection '\(collection.name)': log entries \(cursor.nextLSN)..<\(oldest) were discarded before they were shipped; followers behind them need a newer snapshot")
                    cursor = Collection.LogCursor(nextLSN: oldest)
                case .entries(let frames, let first, let last, let next):
                    try await store.write(frames, to: ShippedLog.pieceKey(collection.id, firstLSN: first))
                    try await store.writeJSON(ShippedHead(lastLSN: last, shippedAtSeconds: Date().timeIntervalSince1970),
                                              ShippedLog.headKey(collection.id))
                    cursor = next
                    collection.setFirstUnshippedLSN(last + 1)
                    shipped += Int(last - first + 1)
                }
            }
            cursors[collection.id] = cursor
        }
        if Date().timeIntervalSince1970 - lastCollectedSeconds >= collectEverySeconds {
            lastCollectedSeconds = Date().timeIntervalSince1970
            try await collect()
        }
        return shipped
    }

    /// The tombstone first, so that a follower never sees a collection vanish
    /// without being told; then the description and the pieces.
    private func shipDeletion(_ id: String) async throws {
        try await store.write(Array("{}".utf8), to: ShippedLog.tombstoneKey(id))
        try await store.delete(ShippedLog.descriptorKey(id))
        for object in try await store.list(prefix: ShippedLog.piecesPrefix(id)) { try await store.delete(object.key) }
        logger.notice("shipped the deletion of collection \(id)")
    }

    /// Deletes the pieces every retained snapshot holds: a piece ends where the
    /// next one starts.
    public func collect() async throws {
        let retained = try await retainedSnapshotLSNs()
        for (id, snapshotLSN) in retained where snapshotLSN > 0 {
            let pieces = try await store.list(prefix: ShippedLog.piecesPrefix(id)).compactMap { object in
                ShippedLog.firstLSN(ofPieceKey: object.key).map { (key: object.key, first: $0) }
            }.sorted { $0.first < $1.first }
            for (index, piece) in pieces.enumerated().dropLast() where pieces[index + 1].first - 1 <= snapshotLSN {
                try await store.delete(piece.key)
            }
        }
    }

    /// Ships every `intervalMilliseconds` until cancelled; a failed round is
    /// logged and retried on the next. With `positions` (writes waiting to be
    /// shipped before they are acknowledged) a waiting write starts a round at
    /// once, within 2 ms, and each round releases the writes it shipped.
    public func run(intervalMilliseconds: Int, positions: ShippedPositions? = nil) async {
        precondition(intervalMilliseconds > 0, "validated by the command line")
        var rounds = RoundLog("log shipping to \(store.displayName)", logger: logger)
        while !Task.isCancelled {
            do {
                try await shipOnce()
                rounds.succeeded()
            } catch {
                rounds.failed(error)
            }
            positions?.settle(storage)
            guard let positions else {
                try? await Task.sleep(for: .milliseconds(intervalMilliseconds))
                continue
            }
            let until = ContinuousClock.now + .milliseconds(intervalMilliseconds)
            while !Task.isCancelled && ContinuousClock.now < until && !positions.wanted.exchange(false, ordering: .acquiringAndReleasing) {
                try? await Task.sleep(for: .milliseconds(2))
            }
        }
        positions?.settle(storage)
    }
}
