/// Metadata filters with ChromaDB's grammar and semantics:
/// `$eq $ne $gt $gte $lt $lte $in $nin`, combined with `$and` / `$or`.
/// As in Chroma since 0.5.12, `$ne` and `$nin` also match records that lack
/// the key; every other operator needs the key to be present. Numbers compare
/// by value whether stored as int or float; range operators apply to numbers only.
public indirect enum WhereFilter: Sendable, Hashable {
    case and([WhereFilter])
    case or([WhereFilter])
    case compare(key: String, op: Comparison, value: MetadataValue)
    case membership(key: String, negated: Bool, values: [MetadataValue])

    public enum Comparison: String, Sendable, Hashable, CaseIterable {
        case eq = "$eq", ne = "$ne", gt = "$gt", gte = "$gte", lt = "$lt", lte = "$lte"
    }
}

/// Document filters: `$contains` / `$not_contains` (case-sensitive substring), `$and` / `$or`.
public indirect enum DocumentFilter: Sendable, Hashable {
    case and([DocumentFilter])
    case or([DocumentFilter])
    case contains(String)
    case notContains(String)
    /// Chroma's `$regex` / `$not_regex`: matched in linear time (`DocumentRegex`).
    case regex(DocumentRegex)
    case notRegex(DocumentRegex)
}

public enum FilterLimits {
    /// Depth of nested $and/$or, and total clauses: bounds evaluation cost per record.
    public static let maximumDepth = 16
    public static let maximumClauses = 256
    public static let maximumInValues = 1_024
    /// Items in one `$and` / `$or` list.
    public static let maximumListItems = 64
}

/// The shape both filter grammars share: `$and` / `$or` over children, and
/// leaves. One walk checks depth, clause counts and list sizes for both; each
/// grammar checks only its own leaves.
protocol FilterTree {
    static var rootName: String { get }
    /// The operator name and children of an `$and` / `$or`; nil for a leaf.
    var branch: (name: String, children: [Self])? { get }
    func validateLeaf(path: String) throws(PayloadError)
}

extension FilterTree {
    /// Checks structure and operands; the message names the offending part.
    func validateTree() throws(PayloadError) {
        var clauses = 0
        try validate(depth: 1, path: Self.rootName, clauses: &clauses)
    }

    private func validate(depth: Int, path: String, clauses: inout Int) throws(PayloadError) {
        guard depth <= FilterLimits.maximumDepth else {
            throw .invalidFilter("\(path): nesting deeper than \(FilterLimits.maximumDepth)")
        }
        clauses += 1
        guard clauses <= FilterLimits.maximumClauses else {
            throw .invalidFilter("\(path): more than \(FilterLimits.maximumClauses) clauses")
        }
        guard let (name, children) = branch else { return try validateLeaf(path: path) }
        guard !children.isEmpty else { throw .invalidFilter("\(path).\(name): needs at least one clause") }
        guard children.count <= FilterLimits.maximumListItems else {
            throw .invalidFilter("\(path).\(name): more than \(FilterLimits.maximumListItems) clauses in one list")
        }
        for (index, child) in children.enumerated() {
            try child.validate(depth: depth + 1, path: "\(path).\(name)[\(index)]", clauses: &clauses)
        }
    }
}

/// The one routine every door calls before a filter is used: the client before
/// it sends one, the engine when it receives one, so both refuse with the same message.
public enum FilterValidation {
    public static func validate(_ filter: WhereFilter?, _ documentFilter: DocumentFilter?) throws(PayloadError) {
        try filter?.validate()
        try documentFilter?.validate()
    }
}

extension WhereFilter {
    public static func eq(_ key: String, _ value: MetadataValue) -> WhereFilter { .compare(key: key, op: .eq, value: value) }
    public static func ne(_ key: String, _ value: MetadataValue) -> WhereFilter { .compare(key: key, op: .ne, value: value) }
    public static func gt(_ key: String, _ value: MetadataValue) -> WhereFilter { .compare(key: key, op: .gt, value: value) }
    public static func gte(_ key: String, _ value: MetadataValue) -> WhereFilter { .compare(key: key, op: .gte, value: value) }
    public static func lt(_ key: String, _ value: MetadataValue) -> WhereFilter { .compare(key: key, op: .lt, value: value) }
    public static func lte(_ key: String, _ value: MetadataValue) -> WhereFilter { .compare(key: key, op: .lte, value: value) }
    public static func `in`(_ key: String, _ values: [MetadataValue]) -> WhereFilter {
        .membership(key: key, negated: false, values: values)
    }
    public static func nin(_ key: String, _ values: [MetadataValue]) -> WhereFilter {
        .membership(key: key, negated: true, values: values)
    }
}

extension WhereFilter: FilterTree {
    static var rootName: String { "where" }

    /// Checks structure and operand types; the message names the offending part.
    public func validate() throws(PayloadError) { try validateTree() }

    var branch: (name: String, children: [WhereFilter])? {
        switch self {
        case .and(let children): return ("$and", children)
        case .or(let children): return ("$or", children)
        case .compare, .membership: return nil
        }
    }

    func validateLeaf(path: String) throws(PayloadError) {
        switch self {
        case .and, .or: preconditionFailure("branches are validated by the tree walk")
        case .compare(let key, let op, let value):
            try Self.validateKey(key, path: path)
            switch op {
            case .gt, .gte, .lt, .lte:
                guard value.number != nil else {
                    throw .invalidFilter("\(path).\(key).\(op.rawValue): operand must be a number, got \(value)")
                }
            case .eq, .ne: break
            }
            if case .double(let number) = value, !number.isFinite {
                throw .invalidFilter("\(path).\(key).\(op.rawValue): operand is not finite")
            }
            try Self.validateOperand(value, path: "\(path).\(key).\(op.rawValue)")
        case .membership(let key, let negated, let values):
            try Self.validateKey(key, path: path)
            let name = negated ? "$nin" : "$in"
            guard !values.isEmpty else { throw .invalidFilter("\(path).\(key).\(name): list must not be empty") }
            guard values.count <= FilterLimits.maximumInValues else {
                throw .invalidFilter("\(path).\(key).\(name): more than \(FilterLimits.maximumInValues) values")
            }
            let isNumber = values[0].number != nil
            for value in values {
                try Self.validateOperand(value, path: "\(path).\(key).\(name)")
                let sameKind = isNumber ? value.number != nil : value.typeCode == values[0].typeCode
                guard sameKind else { throw .invalidFilter("\(path).\(key).\(name): values must all be of one type") }
            }
        }
    }

    /// No operand may be longer than a stored value can be.
    private static func validateOperand(_ value: MetadataValue, path: String) throws(PayloadError) {
        if case .sparseVector = value { throw .invalidFilter("\(path): a sparse vector is not a filter operand") }
        if case .string(let text) = value, text.utf8.count > MetadataLimits.maximumStringBytes {
            throw .invalidFilter("\(path): string exceeds \(MetadataLimits.maximumStringBytes) bytes")
        }
    }

    private static func validateKey(_ key: String, path: String) throws(PayloadError) {
        guard !key.isEmpty, key.utf8.count <= MetadataLimits.maximumKeyBytes else {
            throw .invalidFilter("\(path): key must be 1...\(MetadataLimits.maximumKeyBytes) bytes")
        }
        guard !key.hasPrefix("$") else { throw .invalidFilter("\(path): unknown operator '\(key)'") }
        guard !key.hasPrefix("#") || key == idKey else {
            throw .invalidFilter("\(path): '\(key.prefix(40))' is reserved (of the '#' keys a where filter takes only #id)")
        }
    }

    /// The pseudo-key a filter names a record's id by (Chroma's `#id`): `$eq`,
    /// `$ne`, `$in` and `$nin` compare it as a string.
    public static let idKey = "#id"

    /// Evaluates against encoded metadata (see `MetadataCodec`), reading only
    /// the keys involved; `id` is the record's id, for `#id` conditions.
    public func matches(_ metadata: UnsafeRawBufferPointer, id: UnsafeRawBufferPointer? = nil) -> Bool {
        switch self {
        case .and(let children):
            for child in children where !child.matches(metadata, id: id) { return false }
            return true
        case .or(let children):
            for child in children where child.matches(metadata, id: id) { return true }
            return false
        case .compare(let key, let op, let operand):
            guard let value = Self.value(of: key, metadata, id) else { return op == .ne }
            return Self.compare(value, op, operand)
        case .membership(let key, let negated, let values):
            guard let value = Self.value(of: key, metadata, id) else { return negated }
            let found = values.contains { Self.compare(value, .eq, $0) }
            return negated ? !found : found
        }
    }

    @inline(__always)
    private static func value(of key: String, _ metadata: UnsafeRawBufferPointer, _ id: UnsafeRawBufferPointer?) -> MetadataValue? {
        if key.utf8.first == UInt8(ascii: "#"), key == idKey {
            return id.map { .string(String(decoding: $0, as: UTF8.self)) }
        }
        return MetadataCodec.value(of: key, in: metadata)
    }

    /// Evaluates against decoded metadata (used where records are already in hand).
    public func matches(_ metadata: Metadata) -> Bool {
        let bytes = MetadataCodec.encode(metadata)
        return bytes.withUnsafeBytes { matches($0) }
    }

    static func compare(_ value: MetadataValue, _ op: Comparison, _ operand: MetadataValue) -> Bool {
        if let left = value.number, let right = operand.number {
            switch op {
            case .eq: return left == right
            case .ne: return left != right
            case .gt: return left > right
            case .gte: return left >= right
            case .lt: return left < right
            case .lte: return left <= right
            }
        }
        switch op {
        case .eq: return value == operand
        case .ne: return value != operand
        case .gt, .gte, .lt, .lte: return false  // only numbers are ordered
        }
    }

    /// The keys the filter reads.
    public var keys: Set<String> {
        switch self {
        case .and(let children), .or(let children): return children.reduce(into: Set()) { $0.formUnion($1.keys) }
        case .compare(let key, _, _), .membership(let key, _, _): return [key]
        }
    }
}

extension DocumentFilter: FilterTree {
    static var rootName: String { "where_document" }

    /// Checks structure and texts; the message names the offending part.
    public func validate() throws(PayloadError) { try validateTree() }

    var branch: (name: String, children: [DocumentFilter])? {
        switch self {
        case .and(let children): return ("$and", children)
        case .or(let children): return ("$or", children)
        case .contains, .notContains, .regex, .notRegex: return nil
        }
    }

    func validateLeaf(path: String) throws(PayloadError) {
        switch self {
        case .and, .or: preconditionFailure("branches are validated by the tree walk")
        case .contains(let text), .notContains(let text):
            let name = if case .contains = self { "$contains" } else { "$not_contains" }
            guard !text.isEmpty else { throw .invalidFilter("\(path).\(name): text must not be empty") }
            guard text.utf8.count <= MetadataLimits.maximumStringBytes else {
                throw .invalidFilter("\(path).\(name): text exceeds \(MetadataLimits.maximumStringBytes) bytes")
            }
        case .regex(let expression), .notRegex(let expression):
            let name = if case .regex = self { "$regex" } else { "$not_regex" }
            guard !expression.pattern.isEmpty else { throw .invalidFilter("\(path).\(name): pattern must not be empty") }
            if let error = expression.error { throw .invalidFilter("\(path).\(name): \(error)") }
        }
    }

    /// Evaluates against a document's UTF-8 bytes; a record without a document
    /// matches only `$not_contains`.
    public func matches(_ document: UnsafeRawBufferPointer?) -> Bool {
        switch self {
        case .and(let children):
            for child in children where !child.matches(document) { return false }
            return true
        case .or(let children):
            for child in children where child.matches(document) { return true }
            return false
        case .contains(let text):
            guard let document else { return false }
            return Self.find(text, in: document)
        case .notContains(let text):
            guard let document else { return true }
            return !Self.find(text, in: document)
        case .regex(let expression):
            guard let document else { return false }
            return expression.matches(document)
        case .notRegex(let expression):
            guard let document else { return true }
            return !expression.matches(document)
        }
    }

    static func find(_ needle: String, in haystack: UnsafeRawBufferPointer) -> Bool {
        var needle = needle
        return needle.withUTF8 { pattern -> Bool in
            let count = pattern.count
            guard count > 0 else { return true }
            guard haystack.count >= count, let first = pattern.first else { return false }
            var index = 0
            let last = haystack.count - count
            while index <= last {
                if haystack[index] == first {
                    var equal = true
                    for offset in 1..<max(count, 1) where haystack[index + offset] != pattern[offset] {
                        equal = false
                        break
                    }
                    if equal { return true }
                }
                index += 1
            }
            return false
        }
    }
}
