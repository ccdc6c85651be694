import SextantPayload
import SextantJSON

/// A request problem found while reading ChromaDB-style JSON; the message names the part.
public struct GrammarError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension MetadataValue {
    /// A JSON scalar as a metadata value (null and containers are not values).
    public init?(json: JSONValue) {
        switch json {
        case .string(let text): self = .string(text)
        case .int(let number): self = .int(number)
        case .double(let number): self = .double(number)
        case .bool(let flag): self = .bool(flag)
        default: return nil
        }
    }

    public var json: JSONValue {
        switch self {
        case .string(let text): return .string(text)
        case .int(let number): return .int(number)
        case .double(let number): return .double(number)
        case .bool(let flag): return .bool(flag)
        case .sparseVector(let vector):
            var object: [String: JSONValue] = [
                "#type": .string("sparse_vector"),
                "indices": .array(vector.indices.map { .int(Int64($0)) }),
                "values": .array(vector.values.map { JSONValue.float($0) }),
            ]
            if let labels = vector.labels { object["tokens"] = .array(labels.map(JSONValue.string)) }
            return .object(object)
        }
    }
}

public enum ChromaGrammar {

    /// A metadata object; null means "no metadata".
    public static func metadata(_ json: JSONValue, path: String) throws(GrammarError) -> Metadata? {
        switch json {
        case .null: return nil
        case .object(let object):
            var result = Metadata()
            for (key, value) in object {
                if value.isNull { continue }  // Chroma drops null-valued keys
                if case .object = value, value["#type"] != nil {
                    result[key] = .sparseVector(try sparseVector(value, path: "\(path).\(key)"))
                    continue
                }
                guard let scalar = MetadataValue(json: value) else {
                    throw GrammarError("\(path).\(key): metadata values must be strings, numbers, booleans or sparse vectors, got \(value.typeName)")
                }
                result[key] = scalar
            }
            return result
        default: throw GrammarError("\(path): metadata must be an object, got \(json.typeName)")
        }
    }

    /// `{"#type": "sparse_vector", "indices": [...], "values": [...], "tokens": [...]?}`,
    /// as chromadb's `SparseVector` serializes: indices non-negative and strictly ascending.
    public static func sparseVector(_ json: JSONValue, path: String) throws(GrammarError) -> SparseVector {
        guard json["#type"]?.stringValue == "sparse_vector" else {
            throw GrammarError("\(path): an object value must be a sparse vector ({\"#type\": \"sparse_vector\", ...})")
        }
        guard case .array(let indexValues)? = json["indices"], case .array(let valueValues)? = json["values"] else {
            throw GrammarError("\(path): a sparse vector needs 'indices' and 'values' lists")
        }
        var indices: [UInt32] = []
        var values: [Float] = []
        indices.reserveCapacity(indexValues.count)
        values.reserveCapacity(valueValues.count)
        for item in indexValues {
            guard let number = item.intValue, number >= 0, number <= Int64(UInt32.max) else {
                throw GrammarError("\(path).indices: must be integers in 0...\(UInt32.max)")
            }
            indices.append(UInt32(number))
        }
        for item in valueValues {
            guard let number = item.doubleValue, number.isFinite, abs(number) <= Double(Float.greatestFiniteMagnitude) else {
                throw GrammarError("\(path).values: must be finite float32 numbers")
            }
            values.append(Float(number))
        }
        var labels: [String]?
        if let tokens = json["tokens"], !tokens.isNull {
            guard case .array(let items) = tokens else { throw GrammarError("\(path).tokens: must be a list of strings") }
            var read: [String] = []
            for item in items {
                guard let text = item.stringValue else { throw GrammarError("\(path).tokens: must be a list of strings") }
                read.append(text)
            }
            labels = read
        }
        let vector = SparseVector(indices: indices, values: values, labels: labels)
        do { try vector.validate(path: path) } catch { throw GrammarError(error.description) }
        return vector
    }

    public static func metadataJSON(_ metadata: Metadata) -> JSONValue {
        .object(metadata.mapValues(\.json))
    }

    /// `where`: one key per object; `$and`/`$or` over lists; `field: scalar` is $eq;
    /// `field: {"$op": operand}` with $eq $ne $gt $gte $lt $lte $in $nin.
    public static func `where`(_ json: JSONValue, path: String = "where") throws(GrammarError) -> WhereFilter {
        guard case .object(let object) = json else { throw GrammarError("\(path): must be an object, got \(json.typeName)") }
        guard object.count == 1, let (key, value) = object.first else {
            if object.isEmpty { throw GrammarError("\(path): must not be empty") }
            // Chroma also accepts several fields in one object as an implicit $and.
            var children: [WhereFilter] = []
            for key in object.keys.sorted() {
                guard let value = object[key] else { continue }
                children.append(try self.where(.object([key: value]), path: path))
            }
            return .and(children)
        }
        switch key {
        case "$and", "$or":
            guard case .array(let items) = value, !items.isEmpty else {
                throw GrammarError("\(path).\(key): must be a non-empty list of clauses")
            }
            var children: [WhereFilter] = []
            for (index, item) in items.enumerated() { children.append(try self.where(item, path: "\(path).\(key)[\(index)]")) }
            return key == "$and" ? .and(children) : .or(children)
        default:
            guard !key.hasPrefix("$") else { throw GrammarError("\(path): unknown operator '\(key)'") }
            if let scalar = MetadataValue(json: value) { return .eq(key, scalar) }
            guard case .object(let operation) = value, operation.count == 1, let (op, operand) = operation.first else {
                throw GrammarError("\(path).\(key): expected a value or an object with one operator, got \(value.typeName)")
            }
            let at = "\(path).\(key).\(op)"
            switch op {
            case "$in", "$nin":
                guard case .array(let items) = operand, !items.isEmpty else { throw GrammarError("\(at): must be a non-empty list") }
                var values: [MetadataValue] = []
                for item in items {
                    guard let scalar = MetadataValue(json: item) else { throw GrammarError("\(at): list items must be scalars") }
                    values.append(scalar)
                }
                return op == "$in" ? .in(key, values) : .nin(key, values)
            case "$eq", "$ne", "$gt", "$gte", "$lt", "$lte":
                guard let scalar = MetadataValue(json: operand) else {
                    throw GrammarError("\(at): operand must be a string, number or boolean, got \(operand.typeName)")
                }
                switch op {
                case "$eq": return .eq(key, scalar)
                case "$ne": return .ne(key, scalar)
                case "$gt": return .gt(key, scalar)
                case "$gte": return .gte(key, scalar)
                case "$lt": return .lt(key, scalar)
                default: return .lte(key, scalar)
                }
            default:
                throw GrammarError("\(at): unsupported operator (supported: $eq $ne $gt $gte $lt $lte $in $nin)")
            }
        }
    }

    /// `where_document`: `$contains`, `$not_contains`, `$regex`, `$not_regex`, `$and`, `$or`.
    public static func whereDocument(_ json: JSONValue, path: String = "where_document") throws(GrammarError) -> DocumentFilter {
        guard case .object(let object) = json, object.count == 1, let (key, value) = object.first else {
            throw GrammarError("\(path): must be an object with exactly one operator")
        }
        switch key {
        case "$contains", "$not_contains":
            guard case .string(let text) = value else { throw GrammarError("\(path).\(key): must be a string") }
            return key == "$contains" ? .contains(text) : .notContains(text)
        case "$regex", "$not_regex":
            guard case .string(let pattern) = value, !pattern.isEmpty else { throw GrammarError("\(path).\(key): must be a non-empty string") }
            let expression = DocumentRegex(pattern)
            if let error = expression.error { throw GrammarError("\(path).\(key): \(error)") }
            return key == "$regex" ? .regex(expression) : .notRegex(expression)
        case "$and", "$or":
            guard case .array(let items) = value, !items.isEmpty else {
                throw GrammarError("\(path).\(key): must be a non-empty list of clauses")
            }
            var children: [DocumentFilter] = []
            for (index, item) in items.enumerated() { children.append(try whereDocument(item, path: "\(path).\(key)[\(index)]")) }
            return key == "$and" ? .and(children) : .or(children)
        default:
            throw GrammarError("\(path): unsupported operator '\(key)' (supported: $contains $not_contains $and $or)")
        }
    }
}
