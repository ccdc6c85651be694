import Foundation
import Logging
import SextantObjectStore
import SextantStorage

/// Applies a primary's shipped log to this engine's collections
/// (`sextant engine --follow`), and, once at start, to a primary that restored
/// an empty data folder from its snapshots (`--ship-to`): the snapshot holds
/// the log to some LSN, the shipped pieces the rest.
///
/// Each round reads every collection's head (one small GET each); only a
/// collection behind it fetches pieces. Collections the primary created are
/// created here from their description; those it deleted (a tombstone) are
/// deleted here. Pieces are applied entry by entry through the collection's
/// own WAL (`Collection.applyShipped`), so a follower killed at any moment
/// reopens at a whole entry and resumes after it.
public actor LogFollower {
    public let store: any ObjectStore
    let storage: StorageEngine
    let logger: Logger
    private var descriptions: [String: CollectionConfiguration] = [:]
    /// A read replica (`--follow`): its collections change only by the shipped
    /// log. False for a primary applying its own shipped log once at start.
    let replica: Bool
    private var rounds = 0
    private var reportedGaps: Set<String> = []
    /// Rounds between listings of the primary's collections (new or deleted ones).
    public var discoverEveryRounds = 5

    public init(storage: StorageEngine, store: any ObjectStore, logger: Logger, replica: Bool = true) {
        self.replica = replica
        self.storage = storage
        self.store = store
        self.logger = logger
    }

    /// One round; returns the entries applied.
    @discardableResult
    public func followOnce() async throws -> Int {
        if rounds % discoverEveryRounds == 0 { try await discover() }
        rounds += 1
        var applied = 0
        for collection in storage.list() {
            applied += try await catchUp(collection)
        }
        return applied
    }

    /// Creates the collections the primary described that are not here, and
    /// deletes those it shipped a deletion of.
    public func discover() async throws {
        let objects = try await store.list(prefix: ShippedLog.collectionsPrefix)
        for object in objects where object.key.hasSuffix(".deleted") {
            let id = String(object.key.dropFirst(ShippedLog.collectionsPrefix.count).dropLast(".deleted".count))
            descriptions.removeValue(forKey: id)
            if let local = storage.collection(id: id) {
                try await storage.delete(named: local.name)
                logger.notice("deleted collection '\(local.name)' as its primary did")
            }
        }
        for object in objects where object.key.hasSuffix(".json") {
            let id = String(object.key.dropFirst(ShippedLog.collectionsPrefix.count).dropLast(".json".count))
            guard let shipped = try await store.readJSON(ShippedCollection.self, object.key) else { continue }
            guard shipped.format <= ShippedCollection.currentFormat else {
                throw ReplicationError("\(object.key) has format \(shipped.format); this engine reads \(ShippedCollection.currentFormat)")
            }
            descriptions[id] = shipped.configuration
            guard storage.collection(id: id) == nil else { continue }
            var configuration = shipped.configuration
            // Created as it was before its first entry: the log replays every later change.
            configuration.id = id
            _ = try await storage.create(configuration)
            logger.notice("created collection '\(configuration.name)' as its primary did")
        }
    }

    /// Applies the shipped log after `collection`'s last LSN; returns the entries applied.
    public func catchUp(_ collection: Collection) async throws -> Int {
        if replica { collection.followShippedLog() }
        guard let head = try await store.readJSON(ShippedHead.self, ShippedLog.headKey(collection.id)) else {
            collection.noteReplicaCaughtUp()  // nothing shipped yet
            return 0
        }
        var applied = 0
        while collection.lastLSN < head.lastLSN {
            let next = collection.lastLSN + 1
            guard let key = try await pieceHolding(next, of: collection.id) else {
                if reportedGaps.insert(collection.id).inserted {
                    logger.error("collection '\(collection.name)': the shipped log no longer holds LSN \(next) (a newer snapshot covers it); restart this follower with an empty data folder to start from that snapshot")
                }
                return applied
            }
            let frames = try await store.read(key, maximumBytes: ShippedLog.maximumPieceBytes)
            let before = collection.lastLSN
            let dimension = collection.isDimensionPending ? try await primaryDimension(collection.id) : 0
            let after = try await collection.applyShipped(frames, dimension: dimension)
            guard after > before else {
                throw ReplicationError("collection '\(collection.name)': \(key) holds nothing after LSN \(before)")
            }
            applied += Int(after - before)
        }
        reportedGaps.remove(collection.id)
        collection.noteReplicaCaughtUp()
        return applied
    }

    /// The piece that holds `lsn`: usually the one that starts there; after a
    /// restore from a snapshot, the one that starts before it.
    private func pieceHolding(_ lsn: LSN, of id: String) async throws -> String? {
        let direct = ShippedLog.pieceKey(id, firstLSN: lsn)
        if try await store.head(direct) != nil { return direct }
        let starts = try await store.list(prefix: ShippedLog.piecesPrefix(id)).compactMap { ShippedLog.firstLSN(ofPieceKey: $0.key) }
        guard let first = starts.filter({ $0 <= lsn }).max() else { return nil }
        return ShippedLog.pieceKey(id, firstLSN: first)
    }

    private func primaryDimension(_ id: String) async throws -> Int {
        let shipped = try await store.readJSON(ShippedCollection.self, ShippedLog.descriptorKey(id))
        if let shipped { descriptions[id] = shipped.configuration }
        return descriptions[id]?.dimension ?? 0
    }

    /// Follows every `intervalMilliseconds` until cancelled; a failed round is
    /// logged once and retried.
    public func run(intervalMilliseconds: Int) async {
        precondition(intervalMilliseconds > 0, "validated by the command line")
        var rounds = RoundLog("following \(store.displayName)", logger: logger)
        while !Task.isCancelled {
            do {
                try await followOnce()
                rounds.succeeded()
            } catch {
                rounds.failed(error)
            }
            try? await Task.sleep(for: .milliseconds(intervalMilliseconds))
        }
    }
}
