import SextantClient
import SextantEmbedding
import SextantPayload

/// A collection bound to the embedder that makes its vectors. The binding is
/// recorded in the collection's metadata when it is created and checked on
/// every use: writers (the ingestion worker, the scraper, the demo loader)
/// refuse to mix two vector spaces, and readers (the search API, the answer
/// composer, the bots) embed a text query with the very embedder that made
/// the collection, or refuse.
public enum EmbedderBinding {
    /// Collection metadata keys that record the embedder.
    public static let identifierKey = EmbedderDescriptor.metadataKey
    public static let dimensionKey = EmbedderDescriptor.dimensionMetadataKey

    /// The metadata that records `descriptor`.
    public static func metadata(for descriptor: EmbedderDescriptor) -> Metadata {
        [identifierKey: .string(descriptor.identifier), dimensionKey: .int(Int64(descriptor.dimension))]
    }

    /// The identifier ("name@version") a collection's metadata records, if any.
    public static func recorded(in metadata: Metadata) -> String? {
        if case .string(let identifier)? = metadata[identifierKey] { return identifier }
        return nil
    }

    /// The embedder from `registry` that made `collection`'s vectors.
    public static func embedder(for collection: CollectionInfo, in registry: EmbedderRegistry) throws(EmbedderBindingError)
        -> any Embedder
    {
        guard let identifier = recorded(in: collection.metadata) else {
            throw EmbedderBindingError(.unrecorded, "collection '\(collection.name)' does not record which embedder made its vectors")
        }
        guard let embedder = registry.embedder(identifier) else {
            throw EmbedderBindingError(
                .unavailable,
                "collection '\(collection.name)' was embedded with \(identifier), which is not available here (available: \(registry.embedders.keys.sorted().joined(separator: ", ")))")
        }
        guard collection.dimension == 0 || embedder.descriptor.dimension == collection.dimension else {
            throw EmbedderBindingError(
                .mismatch, "\(identifier) makes \(embedder.descriptor.dimension)-d vectors, collection '\(collection.name)' has \(collection.dimension)")
        }
        return embedder
    }

    /// Opens the collection `name` for writing vectors made by `descriptor`:
    /// creates it bound to the embedder when it does not exist (with
    /// `metadata` besides), binds an empty unbound one, and refuses one that
    /// holds vectors from another embedder. A collection it creates indexes
    /// its documents for BM25 with `textIndex` (nil: no text index).
    public static func open(client: SextantClient, name: String, embedder descriptor: EmbedderDescriptor,
                            metadata extra: Metadata = [:], textIndex: TextIndexOptions? = TextIndexOptions()) async throws
        -> CollectionHandle
    {
        let handle: CollectionHandle
        do {
            handle = try await client.getCollection(name: name)
        } catch let error as SextantError where error.code == .notFound {
            return try await client.createCollection(
                name: name, dimension: descriptor.dimension, metric: .cosine,
                metadata: extra.merging(metadata(for: descriptor)) { _, binding in binding }, getOrCreate: true,
                textIndex: textIndex)
        }
        if let recorded = recorded(in: handle.info.metadata) {
            guard recorded == descriptor.identifier else {
                throw EmbedderBindingError(
                    .mismatch,
                    "collection '\(name)' holds vectors from \(recorded); refusing to add vectors from \(descriptor.identifier) (use the same embedder, or another collection)")
            }
            return handle
        }
        guard handle.info.dimension == 0 || handle.info.dimension == descriptor.dimension else {
            throw EmbedderBindingError(
                .mismatch, "collection '\(name)' has dimension \(handle.info.dimension); \(descriptor) makes \(descriptor.dimension)")
        }
        guard try await handle.count() == 0 else {
            throw EmbedderBindingError(
                .unrecorded, "collection '\(name)' has records from an unrecorded embedder; refusing to mix in \(descriptor.identifier)")
        }
        return try await handle.modify(metadata: handle.info.metadata.merging(metadata(for: descriptor)) { _, binding in binding })
    }
}

/// Why a collection and an embedder do not go together.
public struct EmbedderBindingError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The collection records no embedder (vectors came from elsewhere).
        case unrecorded
        /// The recorded embedder is not registered in this process.
        case unavailable
        /// Another embedder, or another dimension.
        case mismatch
    }
    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
