import Foundation
import SextantIndex
import SextantKernels
import SextantPayload

/// A collection's fixed shape and its (mutable) name and metadata.
public struct CollectionConfiguration: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var dimension: Int
    public var metric: Metric
    public var hnsw: HNSWParameters
    /// Slots reserved up front: a hint, not a ceiling. A collection that fills
    /// its reservation grows at a checkpoint (see `StorageLimits.reservedSlots`).
    public var capacity: Int
    /// What the graph walk reads (fixed at create; manifests written before it
    /// existed mean `.none`).
    public var quantization: Quantization
    public var metadata: [String: TaggedValue]
    public var createdAtSeconds: Double
    /// BM25 over the documents, kept by the collection itself (nil: none).
    /// Manifests written before it existed mean none.
    public var textIndex: TextIndexSettings?
    /// Sparse indexes over sparse vectors records carry in metadata, one per
    /// key (fixed at create; manifests written before they existed mean none).
    public var sparseIndexes: [SparseIndexSettings]
    /// Metadata fields with exact indexes (equality, `$in`, ranges, facets).
    /// Manifests written before they existed mean none.
    public var payloadIndexes: [String]

    public init(id: String = UUID().uuidString.lowercased(), name: String, dimension: Int, metric: Metric = .cosine,
                hnsw: HNSWParameters = HNSWParameters(), capacity: Int = StorageLimits.defaultCollectionCapacity,
                quantization: Quantization = StorageLimits.defaultQuantization,
                metadata: Metadata = [:], createdAtSeconds: Double = Date().timeIntervalSince1970,
                textIndex: TextIndexSettings? = nil, sparseIndexes: [SparseIndexSettings] = [],
                payloadIndexes: [String] = []) {
        self.id = id
        self.name = name
        self.dimension = dimension
        self.metric = metric
        self.hnsw = hnsw
        self.capacity = capacity
        self.quantization = quantization
        self.metadata = metadata.mapValues(TaggedValue.init)
        self.createdAtSeconds = createdAtSeconds
        self.textIndex = textIndex
        self.sparseIndexes = sparseIndexes
        self.payloadIndexes = payloadIndexes
    }

    enum CodingKeys: String, CodingKey {
        case id, name, dimension, metric, hnsw, capacity, quantization, metadata, createdAtSeconds, textIndex, sparseIndexes, payloadIndexes
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        name = try container.decode(String.self, forKey: .name)
        dimension = try container.decode(Int.self, forKey: .dimension)
        metric = try container.decode(Metric.self, forKey: .metric)
        hnsw = try container.decode(HNSWParameters.self, forKey: .hnsw)
        capacity = try container.decode(Int.self, forKey: .capacity)
        quantization = try container.decodeIfPresent(Quantization.self, forKey: .quantization) ?? .none
        metadata = try container.decode([String: TaggedValue].self, forKey: .metadata)
        createdAtSeconds = try container.decode(Double.self, forKey: .createdAtSeconds)
        textIndex = try container.decodeIfPresent(TextIndexSettings.self, forKey: .textIndex)
        sparseIndexes = try container.decodeIfPresent([SparseIndexSettings].self, forKey: .sparseIndexes) ?? []
        payloadIndexes = try container.decodeIfPresent([String].self, forKey: .payloadIndexes) ?? []
    }

    public static let maximumPayloadIndexes = 32

    public static func validatePayloadIndexes(_ fields: [String]) throws {
        guard fields.count <= maximumPayloadIndexes else {
            throw StorageError.invalidArgument("at most \(maximumPayloadIndexes) indexed metadata fields, got \(fields.count)")
        }
        guard Set(fields).count == fields.count else { throw StorageError.invalidArgument("indexed metadata fields must be distinct") }
        for field in fields {
            do { try MetadataCodec.validate([field: .bool(true)]) } catch {
                throw StorageError.invalidArgument("indexed field '\(field.prefix(40))': \(error)")
            }
        }
    }

    public var collectionMetadata: Metadata { metadata.mapValues(\.value) }

    /// The graph's parameters by value, so layers above storage never name the index's types.
    public var m: Int { hnsw.m }
    public var efConstruction: Int { hnsw.efConstruction }
    public var ef: Int { hnsw.ef }

    /// Sets the graph's parameters; nil keeps each default.
    public mutating func setIndexParameters(m: Int?, efConstruction: Int?, ef: Int?) {
        let defaults = HNSWParameters()
        hnsw = HNSWParameters(
            m: m ?? defaults.m, efConstruction: efConstruction ?? defaults.efConstruction, ef: ef ?? defaults.ef)
    }

    /// Names: 1...512 bytes of [A-Za-z0-9._-], starting and ending alphanumeric (ChromaDB's rule, minus its 3-byte minimum).
    public static func validateName(_ name: String) throws {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= StorageLimits.maximumCollectionNameBytes else {
            throw StorageError.invalidArgument("collection name must be 1...\(StorageLimits.maximumCollectionNameBytes) bytes")
        }
        func alphanumeric(_ byte: UInt8) -> Bool {
            (48...57).contains(byte) || (65...90).contains(byte) || (97...122).contains(byte)
        }
        guard bytes.allSatisfy({ alphanumeric($0) || $0 == 46 || $0 == 95 || $0 == 45 }),
            let first = bytes.first, let last = bytes.last, alphanumeric(first), alphanumeric(last)
        else {
            throw StorageError.invalidArgument(
                "collection name '\(name.prefix(60))' must use [A-Za-z0-9._-] and start and end with a letter or digit")
        }
    }

    /// The index layout; a collection whose dimension is still to be decided by
    /// its first write gets a one-dimension placeholder of capacity one.
    /// `reservedSlots` sets the address-space reservation of one generation
    /// (default: the capacity hint); the shape is the configuration's.
    func layout(reservedSlots: Int? = nil) throws -> HNSWLayout {
        if dimension == 0 {
            do { return try HNSWLayout(dimensions: 1, metric: metric, parameters: hnsw, capacity: 1) } catch {
                throw StorageError(error)
            }
        }
        do {
            return try HNSWLayout(dimensions: dimension, metric: metric, parameters: hnsw, capacity: reservedSlots ?? capacity,
                                  quantization: quantization)
        } catch {
            throw StorageError(error)
        }
    }
}

/// A sparse index over the sparse vectors records carry under `key` in their
/// metadata (Chroma's layout: `{"#type": "sparse_vector", ...}` values).
/// `bm25` scales query values by IDF over the live records at query time,
/// as Chroma does for keys its `chroma_bm25` function fills. `sourceKey` and
/// `embeddingFunction` are the client's: kept and echoed, never interpreted.
public struct SparseIndexSettings: Codable, Sendable, Equatable {
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

    public static let maximumIndexes = 4
    public static let maximumEmbeddingFunctionBytes = 16_384

    static func validate(_ indexes: [SparseIndexSettings]) throws {
        guard indexes.count <= maximumIndexes else {
            throw StorageError.invalidArgument("at most \(maximumIndexes) sparse indexes per collection, got \(indexes.count)")
        }
        guard Set(indexes.map(\.key)).count == indexes.count else { throw StorageError.invalidArgument("sparse index keys must be distinct") }
        for index in indexes {
            do { try MetadataCodec.validate([index.key: .bool(true)]) } catch {
                throw StorageError.invalidArgument("sparse index key '\(index.key.prefix(40))': \(error)")
            }
            guard (index.embeddingFunction?.utf8.count ?? 0) <= maximumEmbeddingFunctionBytes,
                  (index.sourceKey?.utf8.count ?? 0) <= MetadataLimits.maximumKeyBytes
            else {
                throw StorageError.invalidArgument("sparse index '\(index.key.prefix(40))': source key or function configuration too long")
            }
        }
    }
}

/// A collection's own full-text index: BM25 over its documents, tokenized as
/// chromadb-client's `chroma_bm25` does (`SextantText.Tokenizer`).
public struct TextIndexSettings: Codable, Sendable, Equatable {
    /// Term-frequency saturation and length normalisation (BM25's k1 and b).
    public var k1: Double
    public var b: Double

    public static let k1Range = 0.0...3.0

    public init(k1: Double = 1.2, b: Double = 0.75) {
        self.k1 = k1
        self.b = b
    }

    public func validate() throws {
        guard k1.isFinite, Self.k1Range.contains(k1), b.isFinite, (0...1).contains(b) else {
            throw StorageError.invalidArgument("text index k1 must be in \(Self.k1Range) and b in 0...1, got \(k1) and \(b)")
        }
    }
}

/// A metadata value with its type kept in JSON (3 and 3.0 stay distinct).
public struct TaggedValue: Codable, Sendable, Equatable {
    public let value: MetadataValue
    public init(_ value: MetadataValue) { self.value = value }

    enum Keys: String, CodingKey { case s, i, f, b }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Keys.self)
        if let text = try container.decodeIfPresent(String.self, forKey: .s) {
            value = .string(text)
        } else if let number = try container.decodeIfPresent(Int64.self, forKey: .i) {
            value = .int(number)
        } else if let number = try container.decodeIfPresent(Double.self, forKey: .f) {
            value = .double(number)
        } else {
            value = .bool(try container.decode(Bool.self, forKey: .b))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        switch value {
        case .string(let text): try container.encode(text, forKey: .s)
        case .int(let number): try container.encode(number, forKey: .i)
        case .double(let number): try container.encode(number, forKey: .f)
        case .bool(let flag): try container.encode(flag, forKey: .b)
        case .sparseVector:
            throw EncodingError.invalidValue(value, .init(codingPath: encoder.codingPath, debugDescription: "collection metadata holds scalars only"))
        }
    }
}

