import Foundation
import SextantConcurrency
import SextantIndex
import SextantKernels
import SextantPayload
import Synchronization

/// A data folder holding collections: `collections/<id>/`, one per collection,
/// each self-describing (its MANIFEST carries its name and shape).
public final class StorageEngine: @unchecked Sendable {
    public let directory: String
    public let io: DurableIO
    public let indexer: Indexer
    private let collections = Mutex<[String: Collection]>([:])  // by id
    private let catalogLock = AsyncLock()

    /// The unindexed tail's bounds every collection gets.
    public let tailLimits: TailLimits
    /// Collections at least this large index a field they are often filtered
    /// on by themselves (`StorageLimits.automaticPayloadIndexRecords`; 0: never).
    public let automaticIndexRecords: Int
    /// Awaited before every write's acknowledgement, in every collection (nil: none).
    public let acknowledgementGate: Collection.AcknowledgementGate?

    /// Opens every collection under `directory` (creating the folder if needed).
    /// A collection whose files fail their checksums fails the open, naming the file.
    public init(directory: String, io: DurableIO = .shared, indexerThreads: Int = 1, indexerPriority: BackgroundPriority = .default,
                tailLimits: TailLimits = TailLimits(), automaticIndexRecords: Int = StorageLimits.automaticPayloadIndexRecords,
                acknowledgementGate: Collection.AcknowledgementGate? = nil) throws {
        precondition(automaticIndexRecords >= 0, "a record count")
        self.acknowledgementGate = acknowledgementGate
        self.directory = directory
        self.io = io
        self.tailLimits = tailLimits
        self.automaticIndexRecords = automaticIndexRecords
        indexer = Indexer(threads: indexerThreads, priority: indexerPriority)
        let root = directory + "/collections"
        let disk = io.disk
        try disk.makeDirectories(root)
        var opened: [String: Collection] = [:]
        for name in disk.list(root) {
            let path = root + "/" + name
            if name.hasPrefix(".") {  // an interrupted create or delete
                disk.removeTree(path)
                continue
            }
            let collection = try Collection.open(directory: path, io: io, limits: tailLimits)
            collection.automaticIndexRecords.store(automaticIndexRecords, ordering: .relaxed)
            collection.acknowledgementGate.withLock { $0 = acknowledgementGate }
            opened[collection.id] = collection
            indexer.register(collection)
        }
        collections.withLock { $0 = opened }
    }

    public func list() -> [Collection] {
        collections.withLock { Array($0.values) }.sorted { $0.configuration.createdAtSeconds < $1.configuration.createdAtSeconds }
    }

    public func collection(named name: String) -> Collection? {
        collections.withLock { $0.values.first { $0.name == name } }
    }

    public func collection(id: String) -> Collection? { collections.withLock { $0[id.lowercased()] } }

    /// Creates a collection. With `getOrCreate`, returns an existing one of that name instead of failing.
    public func create(_ configuration: CollectionConfiguration, getOrCreate: Bool = false) async throws -> (Collection, created: Bool) {
        try CollectionConfiguration.validateName(configuration.name)
        _ = try configuration.layout()
        try MetadataCodec.validate(configuration.collectionMetadata)
        try SparseIndexSettings.validate(configuration.sparseIndexes)
        try CollectionConfiguration.validatePayloadIndexes(configuration.payloadIndexes)
        guard (configuration.collectionMetadata).values.allSatisfy(\.isScalar) else {
            throw StorageError.invalidArgument("collection metadata values must be strings, numbers or booleans")
        }
        return try await catalogLock.withLock { () throws -> (Collection, created: Bool) in
            if let existing = collection(named: configuration.name) {
                if getOrCreate { return (existing, false) }
                throw StorageError.alreadyExists("collection '\(configuration.name)' already exists")
            }
            guard collections.withLock({ $0.count }) < StorageLimits.maximumCollections else {
                throw StorageError.resourceExhausted("at most \(StorageLimits.maximumCollections) collections")
            }
            let root = directory + "/collections"
            let staging = root + "/.creating-" + configuration.id
            let final = root + "/" + configuration.id
            let (io, limits) = (self.io, tailLimits)
            let collection = try await Blocking.run { () throws -> Collection in
                _ = try Collection.create(directory: staging, configuration: configuration, io: io, limits: limits)
                try io.disk.rename(staging, final)
                try io.disk.syncDirectory(root)
                return try Collection.open(directory: final, io: io, limits: limits)
            }
            collection.automaticIndexRecords.store(automaticIndexRecords, ordering: .relaxed)
            collection.acknowledgementGate.withLock { $0 = acknowledgementGate }
            collections.withLock { $0[collection.id] = collection }
            indexer.register(collection)
            return (collection, true)
        }
    }

    /// Deletes a collection and its files.
    public func delete(named name: String) async throws {
        try await catalogLock.withLock {
            guard let collection = collection(named: name) else {
                throw StorageError.notFound("collection '\(name)' does not exist")
            }
            collections.withLock { _ = $0.removeValue(forKey: collection.id) }
            indexer.unregister(collection)
            let root = directory + "/collections"
            let doomed = root + "/.deleted-" + collection.id
            let disk = io.disk
            try await Blocking.run {
                try disk.rename(collection.directory, doomed)
                try disk.syncDirectory(root)
                disk.removeTree(doomed)
            }
        }
    }

    /// Snapshots the given collections (every one when nil) into
    /// `destination/collections/<id>` (see `Collection.snapshot`).
    public func snapshot(_ targets: [Collection]? = nil, to destination: String) async throws
        -> [String: Collection.SnapshotPosition]
    {
        try io.disk.makeDirectories(destination + "/collections")
        var positions: [String: Collection.SnapshotPosition] = [:]
        for collection in targets ?? list() {
            positions[collection.id] = try await collection.snapshot(to: destination + "/collections/" + collection.id)
        }
        return positions
    }

    /// Checkpoints and closes every collection.
    public func close() async throws {
        for collection in list() { try await collection.close() }
        indexer.stop()
    }
}
