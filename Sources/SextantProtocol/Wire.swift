import SextantPayload

// The one pair of converters between the wire's messages and the shared
// vocabulary (`SextantPayload`: metadata values, filters, includes). The engine
// decodes requests and the client encodes them with the same code, so a value
// or a filter means the same thing on both ends.

extension MetadataValue {
    public var wire: Sextant_V1_Value {
        var value = Sextant_V1_Value()
        switch self {
        case .string(let text): value.stringValue = text
        case .int(let number): value.intValue = number
        case .double(let number): value.doubleValue = number
        case .bool(let flag): value.boolValue = flag
        case .sparseVector(let vector): value.sparseVectorValue = vector.wire
        }
        return value
    }

    /// `path` names the value in the error (for example `records[3].metadata.year`).
    public init(wire: Sextant_V1_Value, path: String) throws(ProtocolError) {
        switch wire.kind {
        case .stringValue(let text): self = .string(text)
        case .intValue(let number): self = .int(number)
        case .doubleValue(let number): self = .double(number)
        case .boolValue(let flag): self = .bool(flag)
        case .sparseVectorValue(let vector): self = .sparseVector(try SparseVector(wire: vector, path: path))
        case nil: throw .invalid("\(path): value has no type")
        }
    }
}

extension SparseVector {
    public var wire: Sextant_V1_SparseVector {
        var vector = Sextant_V1_SparseVector()
        vector.indices = indices
        vector.values = values
        vector.labels = labels ?? []
        return vector
    }

    /// Checked as metadata is (ascending indices, finite values, bounds).
    public init(wire: Sextant_V1_SparseVector, path: String) throws(ProtocolError) {
        self.init(indices: wire.indices, values: wire.values, labels: wire.labels.isEmpty ? nil : wire.labels)
        do { try validate(path: path) } catch { throw .invalid(error.description) }
    }
}

extension Dictionary where Key == String, Value == MetadataValue {
    public var wire: Sextant_V1_Metadata {
        var metadata = Sextant_V1_Metadata()
        metadata.fields = mapValues(\.wire)
        return metadata
    }

    public init(wire: Sextant_V1_Metadata, path: String) throws(ProtocolError) {
        var result = Metadata(minimumCapacity: wire.fields.count)
        for (key, value) in wire.fields { result[key] = try MetadataValue(wire: value, path: "\(path).\(key)") }
        self = result
    }
}

extension WhereFilter {
    public var wire: Sextant_V1_Where {
        var clause = Sextant_V1_Where()
        switch self {
        case .and(let children):
            var list = Sextant_V1_WhereList()
            list.clauses = children.map(\.wire)
            clause.and = list
        case .or(let children):
            var list = Sextant_V1_WhereList()
            list.clauses = children.map(\.wire)
            clause.or = list
        case .compare(let key, let op, let value):
            var comparison = Sextant_V1_Comparison()
            comparison.key = key
            comparison.operator = op.wire
            comparison.value = value.wire
            clause.comparison = comparison
        case .membership(let key, let negated, let values):
            var membership = Sextant_V1_Membership()
            membership.key = key
            membership.negated = negated
            membership.values = values.map(\.wire)
            clause.membership = membership
        }
        return clause
    }

    public init(wire clause: Sextant_V1_Where, path: String = "where") throws(ProtocolError) {
        switch clause.clause {
        case .and(let list):
            self = .and(try Self.children(list.clauses, path: "\(path).$and"))
        case .or(let list):
            self = .or(try Self.children(list.clauses, path: "\(path).$or"))
        case .comparison(let comparison):
            let at = "\(path).\(comparison.key)"
            guard let op = Comparison(wire: comparison.operator) else {
                throw .invalid("\(at): unknown operator \(comparison.operator.rawValue)")
            }
            guard comparison.hasValue else { throw .invalid("\(at): missing operand") }
            self = .compare(key: comparison.key, op: op, value: try MetadataValue(wire: comparison.value, path: at))
        case .membership(let membership):
            var values: [MetadataValue] = []
            values.reserveCapacity(membership.values.count)
            for item in membership.values { values.append(try MetadataValue(wire: item, path: "\(path).\(membership.key)")) }
            self = .membership(key: membership.key, negated: membership.negated, values: values)
        case nil:
            throw .invalid("\(path): empty clause")
        }
    }

    private static func children(_ clauses: [Sextant_V1_Where], path: String) throws(ProtocolError) -> [WhereFilter] {
        var children: [WhereFilter] = []
        children.reserveCapacity(clauses.count)
        for (index, child) in clauses.enumerated() { children.append(try WhereFilter(wire: child, path: "\(path)[\(index)]")) }
        return children
    }
}

extension WhereFilter.Comparison {
    var wire: Sextant_V1_ComparisonOperator {
        switch self {
        case .eq: return .comparisonEq
        case .ne: return .comparisonNe
        case .gt: return .comparisonGt
        case .gte: return .comparisonGte
        case .lt: return .comparisonLt
        case .lte: return .comparisonLte
        }
    }

    init?(wire: Sextant_V1_ComparisonOperator) {
        switch wire {
        case .comparisonEq: self = .eq
        case .comparisonNe: self = .ne
        case .comparisonGt: self = .gt
        case .comparisonGte: self = .gte
        case .comparisonLt: self = .lt
        case .comparisonLte: self = .lte
        case .UNRECOGNIZED: return nil
        }
    }
}

extension DocumentFilter {
    public var wire: Sextant_V1_WhereDocument {
        var clause = Sextant_V1_WhereDocument()
        switch self {
        case .and(let children):
            var list = Sextant_V1_WhereDocumentList()
            list.clauses = children.map(\.wire)
            clause.and = list
        case .or(let children):
            var list = Sextant_V1_WhereDocumentList()
            list.clauses = children.map(\.wire)
            clause.or = list
        case .contains(let text): clause.contains = text
        case .notContains(let text): clause.notContains = text
        case .regex(let expression): clause.regex = expression.pattern
        case .notRegex(let expression): clause.notRegex = expression.pattern
        }
        return clause
    }

    public init(wire clause: Sextant_V1_WhereDocument, path: String = "where_document") throws(ProtocolError) {
        func children(_ clauses: [Sextant_V1_WhereDocument], _ path: String) throws(ProtocolError) -> [DocumentFilter] {
            var children: [DocumentFilter] = []
            for (index, child) in clauses.enumerated() { children.append(try DocumentFilter(wire: child, path: "\(path)[\(index)]")) }
            return children
        }
        switch clause.clause {
        case .and(let list): self = .and(try children(list.clauses, "\(path).$and"))
        case .or(let list): self = .or(try children(list.clauses, "\(path).$or"))
        case .contains(let text): self = .contains(text)
        case .notContains(let text): self = .notContains(text)
        case .regex(let pattern): self = .regex(DocumentRegex(pattern))
        case .notRegex(let pattern): self = .notRegex(DocumentRegex(pattern))
        case nil: throw .invalid("\(path): empty clause")
        }
    }
}

extension Include {
    /// Vectors travel as float32 unless the caller asks for float16.
    public func wire(vectorEncoding: Sextant_V1_VectorEncoding = .f32) -> Sextant_V1_Include {
        var include = Sextant_V1_Include()
        include.documents = contains(.documents)
        include.metadatas = contains(.metadatas)
        include.vectors = contains(.vectors)
        include.distances = contains(.distances)
        include.vectorEncoding = vectorEncoding
        return include
    }

    public init(wire: Sextant_V1_Include) {
        self = []
        if wire.documents { insert(.documents) }
        if wire.metadatas { insert(.metadatas) }
        if wire.vectors { insert(.vectors) }
        if wire.distances { insert(.distances) }
    }
}

/// The optional where / where_document pair of a request, decoded and validated
/// by the rules every door shares (`FilterValidation`).
public enum WireFilters {
    public static func decode(hasWhere: Bool, _ clause: Sextant_V1_Where, hasDocument: Bool,
                              _ document: Sextant_V1_WhereDocument) throws(ProtocolError) -> (WhereFilter?, DocumentFilter?) {
        let filter = hasWhere ? try WhereFilter(wire: clause) : nil
        let documentFilter = hasDocument ? try DocumentFilter(wire: document) : nil
        do { try FilterValidation.validate(filter, documentFilter) } catch { throw .invalid(error.description) }
        return (filter, documentFilter)
    }
}
