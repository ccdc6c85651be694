import SextantProtocol

/// A metadata value as clients send and receive it.
public enum MetadataValue: Sendable, Hashable, CustomStringConvertible {
    case string(String)
    case int(Int64)
    case double(Double)
    case bool(Bool)

    public var description: String {
        switch self {
        case .string(let text): return text
        case .int(let number): return "\(number)"
        case .double(let number): return "\(number)"
        case .bool(let flag): return "\(flag)"
        }
    }

    var wire: Sextant_V1_Value {
        var value = Sextant_V1_Value()
        switch self {
        case .string(let text): value.stringValue = text
        case .int(let number): value.intValue = number
        case .double(let number): value.doubleValue = number
        case .bool(let flag): value.boolValue = flag
        }
        return value
    }

    init?(_ wire: Sextant_V1_Value) {
        switch wire.kind {
        case .stringValue(let text): self = .string(text)
        case .intValue(let number): self = .int(number)
        case .doubleValue(let number): self = .double(number)
        case .boolValue(let flag): self = .bool(flag)
        case nil: return nil
        }
    }

}

public typealias Metadata = [String: MetadataValue]

extension Dictionary where Key == String, Value == MetadataValue {
    var wire: Sextant_V1_Metadata {
        var metadata = Sextant_V1_Metadata()
        metadata.fields = mapValues(\.wire)
        return metadata
    }

    init(wire: Sextant_V1_Metadata) {
        self = wire.fields.compactMapValues(MetadataValue.init)
    }
}

/// ChromaDB's `where` grammar.
public indirect enum Where: Sendable, Hashable {
    case and([Where])
    case or([Where])
    case eq(String, MetadataValue)
    case ne(String, MetadataValue)
    case gt(String, MetadataValue)
    case gte(String, MetadataValue)
    case lt(String, MetadataValue)
    case lte(String, MetadataValue)
    case `in`(String, [MetadataValue])
    case nin(String, [MetadataValue])

    var wire: Sextant_V1_Where {
        var clause = Sextant_V1_Where()
        func comparison(_ key: String, _ op: Sextant_V1_ComparisonOperator, _ value: MetadataValue) -> Sextant_V1_Comparison {
            var comparison = Sextant_V1_Comparison()
            comparison.key = key
            comparison.operator = op
            comparison.value = value.wire
            return comparison
        }
        func list(_ children: [Where]) -> Sextant_V1_WhereList {
            var list = Sextant_V1_WhereList()
            list.clauses = children.map(\.wire)
            return list
        }
        func membership(_ key: String, _ negated: Bool, _ values: [MetadataValue]) -> Sextant_V1_Membership {
            var membership = Sextant_V1_Membership()
            membership.key = key
            membership.negated = negated
            membership.values = values.map(\.wire)
            return membership
        }
        switch self {
        case .and(let children): clause.and = list(children)
        case .or(let children): clause.or = list(children)
        case .eq(let key, let value): clause.comparison = comparison(key, .comparisonEq, value)
        case .ne(let key, let value): clause.comparison = comparison(key, .comparisonNe, value)
        case .gt(let key, let value): clause.comparison = comparison(key, .comparisonGt, value)
        case .gte(let key, let value): clause.comparison = comparison(key, .comparisonGte, value)
        case .lt(let key, let value): clause.comparison = comparison(key, .comparisonLt, value)
        case .lte(let key, let value): clause.comparison = comparison(key, .comparisonLte, value)
        case .in(let key, let values): clause.membership = membership(key, false, values)
        case .nin(let key, let values): clause.membership = membership(key, true, values)
        }
        return clause
    }
}

/// ChromaDB's `where_document` grammar.
public indirect enum WhereDocument: Sendable, Hashable {
    case and([WhereDocument])
    case or([WhereDocument])
    case contains(String)
    case notContains(String)

    var wire: Sextant_V1_WhereDocument {
        var clause = Sextant_V1_WhereDocument()
        func list(_ children: [WhereDocument]) -> Sextant_V1_WhereDocumentList {
            var list = Sextant_V1_WhereDocumentList()
            list.clauses = children.map(\.wire)
            return list
        }
        switch self {
        case .and(let children): clause.and = list(children)
        case .or(let children): clause.or = list(children)
        case .contains(let text): clause.contains = text
        case .notContains(let text): clause.notContains = text
        }
        return clause
    }
}

public struct Include: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let documents = Include(rawValue: 1)
    public static let metadatas = Include(rawValue: 2)
    public static let vectors = Include(rawValue: 4)
    public static let distances = Include(rawValue: 8)
    /// ChromaDB's defaults.
    public static let getDefault: Include = [.documents, .metadatas]
    public static let queryDefault: Include = [.documents, .metadatas, .distances]

    var wire: Sextant_V1_Include {
        var include = Sextant_V1_Include()
        include.documents = contains(.documents)
        include.metadatas = contains(.metadatas)
        include.vectors = contains(.vectors)
        include.distances = contains(.distances)
        include.vectorEncoding = .f32
        return include
    }
}

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

/// A record as returned by get and query; fields not included are nil.
public struct RecordResult: Sendable, Equatable {
    public var id: String
    public var document: String?
    public var metadata: Metadata?
    public var vector: [Float]?
    public var distance: Float?

    public init(id: String, document: String? = nil, metadata: Metadata? = nil, vector: [Float]? = nil, distance: Float? = nil) {
        self.id = id
        self.document = document
        self.metadata = metadata
        self.vector = vector
        self.distance = distance
    }

    static func list(_ reply: Sextant_V1_GetReply) throws -> [RecordResult] {
        let vectors = reply.hasVectors ? try reply.vectors.rows() : []
        return reply.records.enumerated().map { index, record in
            RecordResult(
                id: record.id, document: record.hasDocument ? record.document : nil,
                metadata: record.hasMetadata ? Metadata(wire: record.metadata) : nil,
                vector: index < vectors.count ? vectors[index] : nil, distance: record.hasDistance ? record.distance : nil)
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
    public var capacity: Int

    init(_ wire: Sextant_V1_CollectionInfo) {
        id = wire.id
        name = wire.name
        dimension = Int(wire.dimension)
        metric = DistanceMetric(wire: wire.metric)
        m = Int(wire.hnsw.m)
        efConstruction = Int(wire.hnsw.efConstruction)
        ef = Int(wire.hnsw.ef)
        metadata = Metadata(wire: wire.metadata)
        count = Int(wire.count)
        createdAtSeconds = wire.createdAtSeconds
        capacity = Int(wire.capacity)
    }
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
}
