import SextantJSON
import SextantPayload

#if canImport(Glibc)
import Glibc
#endif

/// Chroma's Search API (`POST …/collections/{id}/search`) as chromadb 1.5's
/// client sends it: a list of searches, each a filter, a rank expression,
/// an optional group-by, a limit and offset, and the keys to return. This
/// file reads the JSON and evaluates rank expressions with the semantics of
/// Chroma's distributed server (rust/worker/src/execution/operators/rank.rs);
/// the API runs the nearest-neighbour legs against the engine.
public struct ChromaSearch: Sendable, Equatable {
    public var filter: WhereFilter?
    public var documentFilter: DocumentFilter?
    public var rank: RankExpression?
    public var groupBy: GroupBy?
    public var limit: Int?
    public var offset: Int
    /// Keys to return, a set: `#document`, `#embedding`, `#metadata`, `#score`, or metadata fields.
    public var select: Set<String>

    public struct GroupBy: Sendable, Equatable {
        public var keys: [String]
        /// `$min_k` (true) keeps each group's k records with the smallest sort
        /// keys, `$max_k` the largest.
        public var ascending: Bool
        public var sortKeys: [String]
        public var k: Int
    }

    /// Bounds of one request, documented in docs/LIMITS.md.
    public enum Limits {
        public static let maximumSearches = 32
        public static let maximumKnnLegs = 8
        public static let maximumExpressionNodes = 256
        public static let maximumSelectKeys = 64
        public static let maximumGroupByKeys = 8
    }

    /// The special keys Chroma's select knows; any other key is a metadata field.
    public static let documentKey = "#document"
    public static let embeddingKey = "#embedding"
    public static let metadataKey = "#metadata"
    public static let scoreKey = "#score"
    public static let idKey = "#id"

    /// Selected keys in Chroma's response order: `#document, #embedding, #metadata, #score`, then fields by name.
    public var orderedSelect: [String] {
        let special = [Self.documentKey, Self.embeddingKey, Self.metadataKey, Self.scoreKey].filter(select.contains)
        return special + select.filter { !$0.hasPrefix("#") }.sorted()
    }

    /// Metadata fields selected by name (nil when `#metadata` selects them all).
    public var selectedFields: [String]? {
        select.contains(Self.metadataKey) ? nil : select.filter { !$0.hasPrefix("#") }.sorted()
    }

    public var wantsMetadata: Bool { select.contains(Self.metadataKey) || select.contains { !$0.hasPrefix("#") } }
}

/// A rank expression; every node yields a score per record (lower is better).
public indirect enum RankExpression: Sendable, Equatable {
    case knn(Knn)
    case value(Double)
    case sum([RankExpression])
    case product([RankExpression])
    case maximum([RankExpression])
    case minimum([RankExpression])
    case difference(RankExpression, RankExpression)
    case quotient(RankExpression, RankExpression)
    case absolute(RankExpression)
    case exponential(RankExpression)
    case logarithm(RankExpression)

    public struct Knn: Sendable, Equatable {
        public enum Query: Sendable, Equatable {
            case dense([Float])
            case sparse(SparseVector)
        }
        public var query: Query
        /// `#embedding` for the dense vectors, otherwise a sparse index's metadata key.
        public var key: String
        public var limit: Int
        /// The score of records this leg did not find; nil restricts the result to the leg's records.
        public var defaultScore: Double?
        public var returnRank: Bool
    }

    /// The nearest-neighbour legs in depth-first order (the order their results are consumed in).
    public var knnLegs: [Knn] {
        switch self {
        case .knn(let knn): return [knn]
        case .value: return []
        case .sum(let children), .product(let children), .maximum(let children), .minimum(let children):
            return children.flatMap(\.knnLegs)
        case .difference(let left, let right), .quotient(let left, let right): return left.knnLegs + right.knnLegs
        case .absolute(let child), .exponential(let child), .logarithm(let child): return child.knnLegs
        }
    }

    var nodeCount: Int {
        switch self {
        case .knn, .value: return 1
        case .sum(let children), .product(let children), .maximum(let children), .minimum(let children):
            return 1 + children.reduce(0) { $0 + $1.nodeCount }
        case .difference(let left, let right), .quotient(let left, let right): return 1 + left.nodeCount + right.nodeCount
        case .absolute(let child), .exponential(let child), .logarithm(let child): return 1 + child.nodeCount
        }
    }

    /// Scores of some records, and the score of every other record (nil:
    /// other records are out), as Chroma's `RankDomain`.
    public struct Domain: Sendable, Equatable {
        public var support: [String: Double]
        public var defaultScore: Double?

        static func flat(_ value: Double) -> Domain { Domain(support: [:], defaultScore: value) }

        func map(_ operation: (Double) -> Double) -> Domain {
            Domain(support: support.mapValues(operation), defaultScore: defaultScore.map(operation))
        }

        /// Both defaults: the union, each side's default filling in. One
        /// default: the other side's records. No default: the intersection.
        static func merge(_ left: Domain, _ right: Domain, _ operation: (Double, Double) -> Double) -> Domain {
            switch (left.defaultScore, right.defaultScore) {
            case (let leftDefault?, let rightDefault?):
                var support: [String: Double] = [:]
                for id in Set(left.support.keys).union(right.support.keys) {
                    support[id] = operation(left.support[id] ?? leftDefault, right.support[id] ?? rightDefault)
                }
                return Domain(support: support, defaultScore: operation(leftDefault, rightDefault))
            case (let leftDefault?, nil):
                return Domain(support: Dictionary(uniqueKeysWithValues: right.support.map { id, value in
                    (id, operation(left.support[id] ?? leftDefault, value))
                }), defaultScore: nil)
            case (nil, let rightDefault?):
                return Domain(support: Dictionary(uniqueKeysWithValues: left.support.map { id, value in
                    (id, operation(value, right.support[id] ?? rightDefault))
                }), defaultScore: nil)
            case (nil, nil):
                var support: [String: Double] = [:]
                for (id, value) in left.support { if let other = right.support[id] { support[id] = operation(value, other) } }
                return Domain(support: support, defaultScore: nil)
            }
        }
    }

    /// Evaluates with each leg's results (record id and measure, best first)
    /// given in `knnLegs` order. Scores are computed in float32, as Chroma's are.
    public func evaluate(_ legResults: [[(id: String, measure: Double)]]) -> Domain {
        var next = 0
        return evaluate(legResults, &next)
    }

    private func evaluate(_ legResults: [[(id: String, measure: Double)]], _ next: inout Int) -> Domain {
        func f32(_ operation: @escaping (Float, Float) -> Float) -> (Double, Double) -> Double {
            { Double(operation(Float($0), Float($1))) }
        }
        func fold(_ children: [RankExpression], _ start: Double, _ operation: @escaping (Float, Float) -> Float) -> Domain {
            var accumulated = Domain.flat(start)
            for child in children { accumulated = Domain.merge(accumulated, child.evaluate(legResults, &next), f32(operation)) }
            return accumulated
        }
        switch self {
        case .knn(let knn):
            let results = next < legResults.count ? legResults[next] : []
            next += 1
            var support: [String: Double] = [:]
            for (position, result) in results.enumerated() where support[result.id] == nil {
                support[result.id] = knn.returnRank ? Double(position) : Double(Float(result.measure))
            }
            return Domain(support: support, defaultScore: knn.defaultScore)
        case .value(let value): return .flat(Double(Float(value)))
        case .sum(let children): return fold(children, 0, +)
        case .product(let children): return fold(children, 1, *)
        case .maximum(let children): return fold(children, -Double(Float.greatestFiniteMagnitude), { Swift.max($0, $1) })
        case .minimum(let children): return fold(children, Double(Float.greatestFiniteMagnitude), { Swift.min($0, $1) })
        case .difference(let left, let right):
            let leftDomain = left.evaluate(legResults, &next)
            return Domain.merge(leftDomain, right.evaluate(legResults, &next), f32(-))
        case .quotient(let left, let right):
            let leftDomain = left.evaluate(legResults, &next)
            return Domain.merge(leftDomain, right.evaluate(legResults, &next), f32(/))
        case .absolute(let child): return child.evaluate(legResults, &next).map { Swift.abs($0) }
        case .exponential(let child): return child.evaluate(legResults, &next).map { Double(expf(Float($0))) }
        case .logarithm(let child): return child.evaluate(legResults, &next).map { Double(logf(Float($0))) }
        }
    }
}

// MARK: - Reading the JSON

extension ChromaSearch {
    /// The request body: `{"searches": [...], "read_level": ...}`. Every read
    /// level is served the same way: this server's reads always see every
    /// acknowledged write.
    public static func requests(_ body: JSONValue) throws(GrammarError) -> [ChromaSearch] {
        guard case .array(let items)? = body["searches"] else { throw GrammarError("'searches' must be a list") }
        guard !items.isEmpty else { throw GrammarError("'searches' is empty") }
        guard items.count <= Limits.maximumSearches else {
            throw GrammarError("\(items.count) searches in one request; at most \(Limits.maximumSearches)")
        }
        if let level = body["read_level"], !level.isNull {
            guard let name = level.stringValue, ["index_and_wal", "index_only", "index_and_bounded_wal"].contains(name) else {
                throw GrammarError("read_level must be index_and_wal, index_only or index_and_bounded_wal")
            }
        }
        var result: [ChromaSearch] = []
        for (index, item) in items.enumerated() { result.append(try ChromaSearch(json: item, path: "searches[\(index)]")) }
        return result
    }

    public init(json: JSONValue, path: String) throws(GrammarError) {
        guard case .object = json else { throw GrammarError("\(path): must be an object") }
        filter = nil
        documentFilter = nil
        if let value = json["filter"], !value.isNull, value.objectValue?.isEmpty == false {
            (filter, documentFilter) = try Self.filter(value, path: "\(path).filter")
        }
        rank = nil
        if let value = json["rank"], !value.isNull {
            let expression = try Self.rank(value, path: "\(path).rank")
            guard expression.nodeCount <= Limits.maximumExpressionNodes else {
                throw GrammarError("\(path).rank: more than \(Limits.maximumExpressionNodes) nodes")
            }
            guard expression.knnLegs.count <= Limits.maximumKnnLegs else {
                throw GrammarError("\(path).rank: more than \(Limits.maximumKnnLegs) $knn terms")
            }
            rank = expression
        }
        groupBy = nil
        if let value = json["group_by"], !value.isNull, value.objectValue?.isEmpty == false {
            groupBy = try Self.groupBy(value, path: "\(path).group_by")
            guard rank != nil else { throw GrammarError("\(path).group_by: group_by needs a rank expression") }
        }
        limit = nil
        offset = 0
        if let value = json["limit"], !value.isNull {
            guard case .object = value else { throw GrammarError("\(path).limit: must be an object with offset and limit") }
            if let given = value["limit"], !given.isNull {
                guard let number = given.intValue, number >= 1, number <= Int64(Int32.max) else {
                    throw GrammarError("\(path).limit.limit: must be a positive integer")
                }
                limit = Int(number)
            }
            if let given = value["offset"], !given.isNull {
                guard let number = given.intValue, number >= 0, number <= Int64(Int32.max) else {
                    throw GrammarError("\(path).limit.offset: must be a non-negative integer")
                }
                offset = Int(number)
            }
        }
        select = []
        if let value = json["select"], !value.isNull {
            guard case .array(let keys)? = value["keys"] else { throw GrammarError("\(path).select.keys: must be a list") }
            guard keys.count <= Limits.maximumSelectKeys else {
                throw GrammarError("\(path).select.keys: more than \(Limits.maximumSelectKeys) keys")
            }
            for key in keys {
                guard let name = key.stringValue, !name.isEmpty else { throw GrammarError("\(path).select.keys: keys must be strings") }
                if name.hasPrefix("#"), ![Self.documentKey, Self.embeddingKey, Self.metadataKey, Self.scoreKey, Self.idKey].contains(name) {
                    throw GrammarError("\(path).select.keys: unknown key '\(name.prefix(40))'")
                }
                if name != Self.idKey { select.insert(name) }
            }
        }
    }

    /// A search filter is a `where` whose keys may also be `#document`
    /// (`$contains`, `$not_contains`) and `#id` (`$eq`, `$ne`, `$in`, `$nin`).
    /// Document conditions must be conjuncts of the whole filter: the engine
    /// evaluates them beside, not inside, the metadata filter.
    static func filter(_ json: JSONValue, path: String) throws(GrammarError) -> (WhereFilter?, DocumentFilter?) {
        var metadataParts: [JSONValue] = []
        var documentParts: [DocumentFilter] = []
        func split(_ clause: JSONValue, _ at: String) throws(GrammarError) {
            guard case .object(let object) = clause else { throw GrammarError("\(at): must be an object") }
            if object.count == 1, case .array(let items)? = object["$and"] {
                for (index, item) in items.enumerated() { try split(item, "\(at).$and[\(index)]") }
                return
            }
            if object.count == 1, let condition = object[documentKey] {
                documentParts.append(try documentCondition(condition, path: "\(at).\(documentKey)"))
                return
            }
            try rejectNestedDocument(clause, at)
            metadataParts.append(clause)
        }
        try split(json, path)
        var filter: WhereFilter?
        if !metadataParts.isEmpty {
            let combined: JSONValue = metadataParts.count == 1 ? metadataParts[0] : .object(["$and": .array(metadataParts)])
            filter = try ChromaGrammar.where(combined, path: path)
        }
        let document: DocumentFilter? = documentParts.isEmpty ? nil : documentParts.count == 1 ? documentParts[0] : .and(documentParts)
        return (filter, document)
    }

    private static func rejectNestedDocument(_ clause: JSONValue, _ at: String) throws(GrammarError) {
        switch clause {
        case .object(let object):
            for (key, value) in object {
                if key == documentKey {
                    throw GrammarError("\(at): a #document condition inside $or (or beside other keys) is not supported by this server; make it a condition of the whole filter")
                }
                try rejectNestedDocument(value, at)
            }
        case .array(let items): for item in items { try rejectNestedDocument(item, at) }
        default: return
        }
    }

    private static func documentCondition(_ json: JSONValue, path: String) throws(GrammarError) -> DocumentFilter {
        guard case .object(let object) = json, object.count == 1, let (op, operand) = object.first else {
            throw GrammarError("\(path): expected an object with one operator")
        }
        guard let text = operand.stringValue, !text.isEmpty else { throw GrammarError("\(path).\(op): must be a non-empty string") }
        switch op {
        case "$contains": return .contains(text)
        case "$not_contains": return .notContains(text)
        case "$regex", "$not_regex":
            let expression = DocumentRegex(text)
            if let error = expression.error { throw GrammarError("\(path).\(op): \(error)") }
            return op == "$regex" ? .regex(expression) : .notRegex(expression)
        default: throw GrammarError("\(path): unsupported operator '\(op)' (supported: $contains $not_contains $regex $not_regex)")
        }
    }

    static func groupBy(_ json: JSONValue, path: String) throws(GrammarError) -> GroupBy {
        guard case .array(let keyValues)? = json["keys"], !keyValues.isEmpty, keyValues.count <= Limits.maximumGroupByKeys else {
            throw GrammarError("\(path).keys: must be a list of 1...\(Limits.maximumGroupByKeys) metadata keys")
        }
        var keys: [String] = []
        for key in keyValues {
            guard let name = key.stringValue, !name.isEmpty, !name.hasPrefix("#") else {
                throw GrammarError("\(path).keys: group keys must be metadata fields")
            }
            keys.append(name)
        }
        guard case .object(let aggregate)? = json["aggregate"], aggregate.count == 1, let (op, body) = aggregate.first,
              op == "$min_k" || op == "$max_k"
        else { throw GrammarError("\(path).aggregate: must be {\"$min_k\" | \"$max_k\": {\"keys\": [...], \"k\": n}}") }
        guard case .array(let sortValues)? = body["keys"], !sortValues.isEmpty, sortValues.count <= Limits.maximumGroupByKeys else {
            throw GrammarError("\(path).aggregate.\(op).keys: must be a list of 1...\(Limits.maximumGroupByKeys) keys")
        }
        var sortKeys: [String] = []
        for key in sortValues {
            guard let name = key.stringValue, !name.isEmpty, name == scoreKey || !name.hasPrefix("#") else {
                throw GrammarError("\(path).aggregate.\(op).keys: keys must be #score or metadata fields")
            }
            sortKeys.append(name)
        }
        guard let k = body["k"]?.intValue, k >= 1, k <= 1_000 else { throw GrammarError("\(path).aggregate.\(op).k: must be in 1...1000") }
        return GroupBy(keys: keys, ascending: op == "$min_k", sortKeys: sortKeys, k: Int(k))
    }

    static func rank(_ json: JSONValue, path: String) throws(GrammarError) -> RankExpression {
        guard case .object(let object) = json, object.count == 1, let (op, operand) = object.first else {
            throw GrammarError("\(path): a rank expression is an object with one operator")
        }
        let at = "\(path).\(op)"
        func list() throws(GrammarError) -> [RankExpression] {
            guard case .array(let items) = operand, !items.isEmpty else { throw GrammarError("\(at): must be a non-empty list") }
            var children: [RankExpression] = []
            for (index, item) in items.enumerated() { children.append(try rank(item, path: "\(at)[\(index)]")) }
            return children
        }
        func pair() throws(GrammarError) -> (RankExpression, RankExpression) {
            guard let left = operand["left"], let right = operand["right"] else { throw GrammarError("\(at): needs left and right") }
            return (try rank(left, path: "\(at).left"), try rank(right, path: "\(at).right"))
        }
        switch op {
        case "$knn": return .knn(try knn(operand, path: at))
        case "$val":
            guard let value = operand.doubleValue, value.isFinite else { throw GrammarError("\(at): must be a finite number") }
            return .value(value)
        case "$sum": return .sum(try list())
        case "$mul": return .product(try list())
        case "$max": return .maximum(try list())
        case "$min": return .minimum(try list())
        case "$sub":
            let (left, right) = try pair()
            return .difference(left, right)
        case "$div":
            let (left, right) = try pair()
            return .quotient(left, right)
        case "$abs": return .absolute(try rank(operand, path: at))
        case "$exp": return .exponential(try rank(operand, path: at))
        case "$log": return .logarithm(try rank(operand, path: at))
        default:
            throw GrammarError("\(path): unknown rank operator '\(op.prefix(40))' (supported: $knn $val $sum $mul $max $min $sub $div $abs $exp $log)")
        }
    }

    static func knn(_ json: JSONValue, path: String) throws(GrammarError) -> RankExpression.Knn {
        guard case .object = json, let queryValue = json["query"] else { throw GrammarError("\(path): needs a query") }
        let key = json["key"]?.stringValue ?? embeddingKey
        let query: RankExpression.Knn.Query
        switch queryValue {
        case .array(let numbers):
            var vector: [Float] = []
            vector.reserveCapacity(numbers.count)
            for number in numbers {
                guard let double = number.doubleValue, double.isFinite, Swift.abs(double) <= Double(Float.greatestFiniteMagnitude) else {
                    throw GrammarError("\(path).query: must hold finite float32 numbers")
                }
                vector.append(Float(double))
            }
            guard !vector.isEmpty else { throw GrammarError("\(path).query: is empty") }
            query = .dense(vector)
        case .object:
            query = .sparse(try ChromaGrammar.sparseVector(queryValue, path: "\(path).query"))
        case .string:
            throw GrammarError("\(path).query: a text query must be embedded by the client (declare the key's embedding function in the schema)")
        default: throw GrammarError("\(path).query: must be a list of numbers or a sparse vector")
        }
        switch (key, query) {
        case (embeddingKey, .sparse): throw GrammarError("\(path): #embedding takes a dense query")
        case (embeddingKey, .dense): break
        case (_, .dense): throw GrammarError("\(path): key '\(key.prefix(40))' takes a sparse query (dense queries use #embedding)")
        default:
            guard !key.hasPrefix("#") else { throw GrammarError("\(path).key: '\(key.prefix(40))' is not a vector key") }
        }
        var limit = 16
        if let value = json["limit"], !value.isNull {
            guard let number = value.intValue, number >= 1, number <= 1_000 else { throw GrammarError("\(path).limit: must be in 1...1000") }
            limit = Int(number)
        }
        var defaultScore: Double?
        if let value = json["default"], !value.isNull {
            guard let number = value.doubleValue, number.isFinite else { throw GrammarError("\(path).default: must be a finite number") }
            defaultScore = number
        }
        var returnRank = false
        if let value = json["return_rank"], !value.isNull {
            guard let flag = value.boolValue else { throw GrammarError("\(path).return_rank: must be a boolean") }
            returnRank = flag
        }
        return RankExpression.Knn(query: query, key: key, limit: limit, defaultScore: defaultScore, returnRank: returnRank)
    }
}

// MARK: - Group by

extension ChromaSearch.GroupBy {
    /// Keeps each group's k best by the sort keys, then orders all kept
    /// records by score (ascending), as Chroma's `RankedGroupBy` does. Records
    /// lacking a group key form their own group (the missing value).
    public func apply(_ ranked: [(id: String, score: Double)], metadata: [String: Metadata]) -> [(id: String, score: Double)] {
        func sortValue(_ key: String, _ record: (id: String, score: Double)) -> MetadataValue? {
            key == ChromaSearch.scoreKey ? .double(record.score) : metadata[record.id]?[key]
        }
        var groups: [[MetadataValue?]: [(id: String, score: Double)]] = [:]
        var order: [[MetadataValue?]] = []
        for record in ranked {
            let group = keys.map { metadata[record.id]?[$0] }
            if groups[group] == nil { order.append(group) }
            groups[group, default: []].append(record)
        }
        var kept: [(id: String, score: Double)] = []
        for group in order {
            guard let members = groups[group] else { continue }
            let sorted = members.enumerated().sorted { left, right in
                for key in sortKeys {
                    let comparison = Self.compare(sortValue(key, left.element), sortValue(key, right.element))
                    if comparison != 0 { return ascending ? comparison < 0 : comparison > 0 }
                }
                return left.offset < right.offset
            }
            kept += sorted.prefix(k).map(\.element)
        }
        return kept.sorted { $0.score < $1.score || ($0.score == $1.score && $0.id < $1.id) }
    }

    /// Missing first, then booleans, numbers, strings (Chroma's value order within one type).
    static func compare(_ left: MetadataValue?, _ right: MetadataValue?) -> Int {
        func rank(_ value: MetadataValue?) -> Int {
            switch value {
            case nil: return 0
            case .bool?: return 1
            case .int?, .double?: return 2
            case .string?: return 3
            case .sparseVector?: return 4
            }
        }
        let (leftRank, rightRank) = (rank(left), rank(right))
        if leftRank != rightRank { return leftRank < rightRank ? -1 : 1 }
        switch (left, right) {
        case (.bool(let a)?, .bool(let b)?): return a == b ? 0 : (!a ? -1 : 1)
        case (.string(let a)?, .string(let b)?): return a == b ? 0 : (a < b ? -1 : 1)
        default:
            let a = left?.number ?? 0
            let b = right?.number ?? 0
            return a == b ? 0 : (a < b ? -1 : 1)
        }
    }
}
