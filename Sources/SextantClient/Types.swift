import SextantPayload
import SextantProtocol

public enum DistanceMetric: String, Sendable, Codable, CaseIterable {
    case cosine
    case innerProduct = "ip"
    case l2

    var wire: Sextant_V1_Metric {
        switch self {
        case .cosine: return .cosine
        case .innerProduct: return .innerProduct
        case .l2: return .l2
        }
    }

    init(wire: Sextant_V1_Metric) {
        switch wire {
        case .innerProduct: self = .innerProduct
        case .l2: self = .l2
        default: self = .cosine
        }
    }
}

/// What a collection's graph walk reads (see proto/PROTOCOL.md): float16
/// vectors, or a compact code per vector with the float16 vectors read only to
/// rank the best candidates.
public enum VectorQuantization: String, Sendable, Codable, CaseIterable {
    case none
    case int8
    case bits1

    var wire: Sextant_V1_Quantization {
        switch self {
        case .none: return .none
        case .int8: return .int8
        case .bits1: return .bits1
        }
    }

    init?(wire: Sextant_V1_Quantization) {
        switch wire {
        case .none: self = .none
        case .int8: self = .int8
        case .bits1: self = .bits1
        case .default, .UNRECOGNIZED: return nil
        }
    }
}

extension SearchMode {
    var wire: Sextant_V1_SearchMode {
        switch self {
        case .semantic: return .semantic
        case .lexical: return .lexical
        case .hybrid: return .hybrid
        }
    }
}

/// A record as returned by get and query; fields not included are nil.
public struct RecordResult: Sendable, Equatable {
    public var id: String
    public var document: String?
    public var metadata: Metadata?
    public var vector: [Float]?
    public var distance: Float?
    /// Lexical search: BM25; hybrid: the fused score. Higher is better.
    public var score: Double?

    public init(id: String, document: String? = nil, metadata: Metadata? = nil, vector: [Float]? = nil, distance: Float? = nil,
                score: Double? = nil) {
        self.id = id
        self.document = document
        self.metadata = metadata
        self.vector = vector
        self.distance = distance
        self.score = score
    }

    static func list(_ reply: Sextant_V1_GetReply) throws -> [RecordResult] {
        let vectors = reply.hasVectors ? try reply.vectors.rows() : []
        return try reply.records.enumerated().map { index, record in
            RecordResult(
                id: record.id, document: record.hasDocument ? record.document : nil,
                metadata: record.hasMetadata ? try Metadata(wire: record.metadata, path: "records[\(index)].metadata") : nil,
                vector: index < vectors.count ? vectors[index] : nil, distance: record.hasDistance ? record.distance : nil,
                score: record.hasScore ? record.score : nil)
        }
    }
}

public struct CollectionInfo: Sendable, Equatable {
    public var id: String
    public var name: String
    public var dimension: Int
    public var metric: DistanceMetric
    public var m: Int
    public var efConstruction: Int
    public var ef: Int
    public var metadata: Metadata
    public var count: Int
    public var createdAtSeconds: Double
    /// Slots reserved now; the collection grows past it.
    public var capacity: Int
    /// Nil from an engine that predates quantization.
    public var quantization: VectorQuantization?
    /// The collection's own BM25 index over its documents, if it has one.
    public var textIndex: TextIndexOptions?
    /// Sparse indexes over the sparse vectors records carry in metadata.
    public var sparseIndexes: [SparseIndexOptions]
    /// Metadata fields with exact indexes.
    public var payloadIndexes: [String]

    init(_ wire: Sextant_V1_CollectionInfo) {
        id = wire.id
        name = wire.name
        dimension = Int(wire.dimension)
        metric = DistanceMetric(wire: wire.metric)
        m = Int(wire.hnsw.m)
        efConstruction = Int(wire.hnsw.efConstruction)
        ef = Int(wire.hnsw.ef)
        // The engine sends typed values only; an untyped one (a newer engine's type) is left out.
        metadata = wire.metadata.fields.compactMapValues { try? MetadataValue(wire: $0, path: "metadata") }
        count = Int(wire.count)
        createdAtSeconds = wire.createdAtSeconds
        capacity = Int(wire.capacity)
        quantization = VectorQuantization(wire: wire.quantization)
        textIndex = wire.hasTextIndex ? TextIndexOptions(k1: wire.textIndex.k1, b: wire.textIndex.b) : nil
        sparseIndexes = wire.sparseIndexes.map(SparseIndexOptions.init(wire:))
        payloadIndexes = wire.payloadIndexes
    }
}

/// A sparse index a collection keeps over the sparse vectors its records
/// carry under `key` in their metadata (`MetadataValue.sparseVector`).
/// `bm25`: query values are scaled by IDF over the live records, for vectors
/// of saturated term frequencies (chromadb's `chroma_bm25`). `sourceKey` and
/// `embeddingFunction` (JSON) are kept for clients that compute the vectors.
public struct SparseIndexOptions: Sendable, Equatable {
    public var key: String
    public var bm25: Bool
    public var sourceKey: String?
    public var embeddingFunction: String?

    public init(key: String, bm25: Bool = false, sourceKey: String? = nil, embeddingFunction: String? = nil) {
        self.key = key
        self.bm25 = bm25
        self.sourceKey = sourceKey
        self.embeddingFunction = embeddingFunction
    }

    init(wire: Sextant_V1_SparseIndex) {
        self.init(key: wire.key, bm25: wire.bm25, sourceKey: wire.sourceKey.isEmpty ? nil : wire.sourceKey,
                  embeddingFunction: wire.embeddingFunction.isEmpty ? nil : wire.embeddingFunction)
    }

    var wire: Sextant_V1_SparseIndex {
        var wire = Sextant_V1_SparseIndex()
        wire.key = key
        wire.bm25 = bm25
        wire.sourceKey = sourceKey ?? ""
        wire.embeddingFunction = embeddingFunction ?? ""
        return wire
    }
}

/// BM25's parameters for a collection's text index (tokenized as
/// chromadb-client's `chroma_bm25` does).
public struct TextIndexOptions: Sendable, Equatable {
    public var k1: Double
    public var b: Double
    public init(k1: Double = 1.2, b: Double = 0.75) {
        self.k1 = k1
        self.b = b
    }

    var wire: Sextant_V1_TextIndex {
        var wire = Sextant_V1_TextIndex()
        wire.k1 = k1
        wire.b = b
        return wire
    }
}

/// What a modify does to the text index: build it (or rebuild with new
/// parameters) from the collection's records, or drop it.
public enum TextIndexChange: Sendable, Equatable {
    case build(TextIndexOptions)
    case drop
}

public struct WriteResult: Sendable, Equatable {
    /// The WAL position at which the write is durable.
    public var lsn: UInt64
    public var affected: Int
}

public struct CollectionStatistics: Sendable, Equatable {
    public var id: String
    public var name: String
    public var liveRecords: Int
    public var unindexedRecords: Int
    public var indexedRecords: Int
    public var deletedAwaitingReclaim: Int
    public var lastLSN: UInt64
    public var durableLSN: UInt64
    public var checkpointLSN: UInt64
    public var generation: UInt64
    public var walBytes: Int
    public var diskBytes: Int
    /// Slots reserved; the collection grows past them at a checkpoint.
    public var capacitySlots: Int
    /// Bytes in use by part, and what a search keeps resident.
    public var vectorBytes: Int
    public var graphBytes: Int
    public var codeBytes: Int
    public var heapBytes: Int
    public var residentSearchBytes: Int
    /// A read replica's collection (`sextant engine --follow`).
    public var isReplica = false
    /// On a replica: milliseconds since it last found nothing newer in its
    /// primary's shipped log; nil before its first round found that end.
    public var replicaLagMilliseconds: UInt64? = nil
}

/// A metadata field's values among the records a filter matches.
public struct FacetResult: Sendable, Equatable {
    public struct Value: Sendable, Equatable {
        public var value: MetadataValue
        public var count: Int
    }
    /// Records matching the filters.
    public var matched: Int
    /// Most common string and boolean values, most first.
    public var values: [Value]
    /// Numbers: the smallest and largest, and how many matching records hold one.
    public var minimum: Double?
    public var maximum: Double?
    public var numbers: Int
    /// Counted from the field's index rather than the records.
    public var indexed: Bool
}
