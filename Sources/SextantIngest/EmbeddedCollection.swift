import SextantClient
import SextantEmbedding

/// A collection bound to the embedder that makes its vectors: created on first
/// use with the embedder recorded in its metadata, refused when it holds
/// vectors from another one. The ingestion worker and the scraper both write
/// through this, so two writers can never mix two vector spaces.
public enum EmbeddedCollection {
    public static func open(client: SextantClient, name: String, embedder descriptor: EmbedderDescriptor) async throws -> CollectionHandle {
        let handle: CollectionHandle
        do {
            handle = try await client.getCollection(name: name)
        } catch let error as SextantError where error.code == .notFound {
            return try await client.createCollection(
                name: name, dimension: descriptor.dimension, metric: .cosine,
                metadata: [EmbedderDescriptor.metadataKey: .string(descriptor.identifier),
                           EmbedderDescriptor.dimensionMetadataKey: .int(Int64(descriptor.dimension))],
                getOrCreate: true)
        }
        if case .string(let recorded)? = handle.info.metadata[EmbedderDescriptor.metadataKey] {
            guard recorded == descriptor.identifier else {
                throw IngestError.embedderMismatch(
                    "collection '\(name)' holds vectors from \(recorded); refusing to add vectors from \(descriptor.identifier) (use the same embedder, or another collection)")
            }
            return handle
        }
        guard handle.info.dimension == 0 || handle.info.dimension == descriptor.dimension else {
            throw IngestError.embedderMismatch("collection '\(name)' has dimension \(handle.info.dimension); \(descriptor) makes \(descriptor.dimension)")
        }
        guard try await handle.count() == 0 else {
            throw IngestError.embedderMismatch(
                "collection '\(name)' has records from an unrecorded embedder; refusing to mix in \(descriptor.identifier)")
        }
        var metadata = handle.info.metadata
        metadata[EmbedderDescriptor.metadataKey] = .string(descriptor.identifier)
        metadata[EmbedderDescriptor.dimensionMetadataKey] = .int(Int64(descriptor.dimension))
        return try await handle.modify(metadata: metadata)
    }
}
