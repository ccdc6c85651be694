import SextantIndex
import SextantKernels
import SextantPayload
import SextantProtocol
import SextantStorage

/// An error on its way to the wire: a status and a message for the client.
struct RequestError: Error {
    let status: StatusCode
    let message: String

    init(_ status: StatusCode, _ message: String) {
        self.status = status
        self.message = message
    }

    /// Maps whatever a handler threw to a status. Storage errors carry their
    /// kind; anything unexpected is INTERNAL (and logged by the caller).
    init(_ error: any Error) {
        switch error {
        case let error as RequestError: self = error
        case let error as StorageError:
            switch error {
            case .invalidArgument(let message): self.init(.invalidArgument, message)
            case .notFound(let message): self.init(.notFound, message)
            case .alreadyExists(let message): self.init(.alreadyExists, message)
            case .resourceExhausted(let message): self.init(.resourceExhausted, message)
            case .corrupted(let message): self.init(.dataLoss, message)
            case .io(let message): self.init(.unavailable, message)
            case .unavailable(let message): self.init(.unavailable, message)
            }
        case let error as ProtocolError: self.init(.invalidArgument, error.description)
        case let error as PayloadError: self.init(.invalidArgument, error.description)
        case let error as IndexError: self.init(.invalidArgument, error.description)
        default: self.init(.internal, "internal error: \(error)")
        }
    }
}

enum Convert {
    static func value(_ value: Sextant_V1_Value, path: String) throws(RequestError) -> MetadataValue {
        switch value.kind {
        case .stringValue(let text): return .string(text)
        case .intValue(let number): return .int(number)
        case .doubleValue(let number): return .double(number)
        case .boolValue(let flag): return .bool(flag)
        case nil: throw RequestError(.invalidArgument, "\(path): value has no type")
        }
    }

    static func value(_ value: MetadataValue) -> Sextant_V1_Value {
        var out = Sextant_V1_Value()
        switch value {
        case .string(let text): out.stringValue = text
        case .int(let number): out.intValue = number
        case .double(let number): out.doubleValue = number
        case .bool(let flag): out.boolValue = flag
        }
        return out
    }

    static func metadata(_ metadata: Sextant_V1_Metadata, path: String) throws(RequestError) -> Metadata {
        var result = Metadata()
        for (key, value) in metadata.fields { result[key] = try self.value(value, path: "\(path).\(key)") }
        return result
    }

    static func metadata(_ metadata: Metadata) -> Sextant_V1_Metadata {
        var out = Sextant_V1_Metadata()
        out.fields = metadata.mapValues { value($0) }
        return out
    }

    static func filter(_ clause: Sextant_V1_Where, path: String = "where") throws(RequestError) -> WhereFilter {
        switch clause.clause {
        case .and(let list):
            var children: [WhereFilter] = []
            for (index, child) in list.clauses.enumerated() { children.append(try filter(child, path: "\(path).$and[\(index)]")) }
            return .and(children)
        case .or(let list):
            var children: [WhereFilter] = []
            for (index, child) in list.clauses.enumerated() { children.append(try filter(child, path: "\(path).$or[\(index)]")) }
            return .or(children)
        case .comparison(let comparison):
            let op: WhereFilter.Comparison
            switch comparison.operator {
            case .comparisonEq: op = .eq
            case .comparisonNe: op = .ne
            case .comparisonGt: op = .gt
            case .comparisonGte: op = .gte
            case .comparisonLt: op = .lt
            case .comparisonLte: op = .lte
            case .UNRECOGNIZED(let raw): throw RequestError(.invalidArgument, "\(path).\(comparison.key): unknown operator \(raw)")
            }
            guard comparison.hasValue else { throw RequestError(.invalidArgument, "\(path).\(comparison.key): missing operand") }
            return .compare(key: comparison.key, op: op, value: try value(comparison.value, path: "\(path).\(comparison.key)"))
        case .membership(let membership):
            var values: [MetadataValue] = []
            for item in membership.values { values.append(try value(item, path: "\(path).\(membership.key)")) }
            return .membership(key: membership.key, negated: membership.negated, values: values)
        case nil:
            throw RequestError(.invalidArgument, "\(path): empty clause")
        }
    }

    static func documentFilter(_ clause: Sextant_V1_WhereDocument, path: String = "where_document") throws(RequestError)
        -> DocumentFilter
    {
        switch clause.clause {
        case .and(let list):
            var children: [DocumentFilter] = []
            for (index, child) in list.clauses.enumerated() {
                children.append(try documentFilter(child, path: "\(path).$and[\(index)]"))
            }
            return .and(children)
        case .or(let list):
            var children: [DocumentFilter] = []
            for (index, child) in list.clauses.enumerated() {
                children.append(try documentFilter(child, path: "\(path).$or[\(index)]"))
            }
            return .or(children)
        case .contains(let text): return .contains(text)
        case .notContains(let text): return .notContains(text)
        case nil: throw RequestError(.invalidArgument, "\(path): empty clause")
        }
    }

    static func optionalFilters(_ hasWhere: Bool, _ clause: Sextant_V1_Where, _ hasDocument: Bool,
                                _ document: Sextant_V1_WhereDocument) throws(RequestError) -> (WhereFilter?, DocumentFilter?) {
        let whereFilter = hasWhere ? try filter(clause) : nil
        let documentFilter = hasDocument ? try self.documentFilter(document) : nil
        do {
            try whereFilter?.validate()
            try documentFilter?.validate()
        } catch { throw RequestError(.invalidArgument, "\(error)") }
        return (whereFilter, documentFilter)
    }

    static func metric(_ metric: Sextant_V1_Metric) throws(RequestError) -> Metric {
        switch metric {
        case .cosine: return .cosine
        case .innerProduct: return .innerProduct
        case .l2: return .l2
        case .UNRECOGNIZED(let raw): throw RequestError(.invalidArgument, "unknown metric \(raw)")
        }
    }

    static func metric(_ metric: Metric) -> Sextant_V1_Metric {
        switch metric {
        case .cosine: return .cosine
        case .innerProduct: return .innerProduct
        case .l2: return .l2
        }
    }

    static func include(_ include: Sextant_V1_Include) -> Include {
        var result: Include = []
        if include.documents { result.insert(.documents) }
        if include.metadatas { result.insert(.metadatas) }
        if include.vectors { result.insert(.vectors) }
        if include.distances { result.insert(.distances) }
        return result
    }

    static func info(_ collection: Collection) -> Sextant_V1_CollectionInfo {
        let configuration = collection.configuration
        var info = Sextant_V1_CollectionInfo()
        info.id = configuration.id
        info.name = configuration.name
        info.dimension = UInt32(configuration.dimension)
        info.metric = metric(configuration.metric)
        info.hnsw.m = UInt32(configuration.hnsw.m)
        info.hnsw.efConstruction = UInt32(configuration.hnsw.efConstruction)
        info.hnsw.ef = UInt32(configuration.hnsw.ef)
        info.metadata = metadata(configuration.collectionMetadata)
        info.count = UInt64(collection.count)
        info.createdAtSeconds = configuration.createdAtSeconds
        info.capacity = UInt64(configuration.capacity)
        return info
    }

    /// Records (and their vectors, when asked) in reply form.
    static func reply(_ records: [RecordView], include: Sextant_V1_Include, dimension: Int) -> Sextant_V1_GetReply {
        var reply = Sextant_V1_GetReply()
        reply.records = records.map { record in
            var out = Sextant_V1_RecordResult()
            out.id = record.id
            if let document = record.document { out.document = document }
            if let metadata = record.metadata { out.metadata = self.metadata(metadata) }
            if let distance = record.distance { out.distance = distance }
            return out
        }
        if include.vectors {
            reply.vectors = Sextant_V1_Vectors(
                rows: records.map { $0.vector ?? [Float](repeating: 0, count: dimension) }, dimension: dimension,
                encoding: include.vectorEncoding)
        }
        return reply
    }
}
