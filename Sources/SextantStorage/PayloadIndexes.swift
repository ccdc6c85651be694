import SextantPayload

/// A collection's exact indexes over its declared metadata fields
/// (`CollectionConfiguration.payloadIndexes`). Unlike the text index, a
/// batch's changes are cheap (no tokenizing: a key per slot and an append),
/// so they are made in place under the exclusive side of the lock, taken
/// only between readers; a filter's candidates are read under the shared side.
///
/// Built from the records when the collection opens and kept by each
/// batch's apply (replayed from the WAL like every other change), so an
/// acknowledged write is in it.
final class CollectionPayloadIndexes: @unchecked Sendable {
    struct Change {
        var slot: UInt32
        var metadata: [UInt8]?
    }

    private let lock = ReadWriteLock()
    /// Guarded by `lock`; nil without declared fields.
    private var index: PayloadIndex?

    var isEnabled: Bool { lock.withShared { index != nil } }

    func reset(_ replacement: PayloadIndex?) {
        let replaced = lock.withExclusiveBetweenReaders { () -> PayloadIndex? in
            defer { index = replacement }
            return index
        }
        _ = replaced
    }

    func apply(_ changes: [Change]) {
        guard !changes.isEmpty else { return }
        lock.withExclusiveBetweenReaders {
            guard index != nil else { return }
            for change in changes {
                if let metadata = change.metadata {
                    metadata.withUnsafeBytes { index?.set(slot: change.slot, metadata: $0) }
                } else {
                    index?.set(slot: change.slot, metadata: nil)
                }
            }
            index?.compact()
        }
    }

    /// The filter's candidate slots (sorted) when the indexes can tell, and whether they are exact.
    func candidates(_ filter: WhereFilter) -> (slots: [UInt32], exact: Bool)? {
        lock.withShared { index?.candidates(filter) }
    }

    func matchCount(_ filter: WhereFilter) -> Int? { lock.withShared { index?.matchCount(filter) } }

    func indexes(_ field: String) -> Bool { lock.withShared { index?.fields[field] != nil } }

    func facet(_ field: String, among slots: [UInt32]?, limit: Int) -> [(value: MetadataValue, count: Int)]? {
        lock.withShared { index?.facet(field, among: slots, limit: limit) }
    }

    func numberRange(_ field: String, among slots: [UInt32]?) -> (minimum: Double, maximum: Double, count: Int)? {
        lock.withShared { index?.numberRange(field, among: slots) }
    }

    static func build(_ fields: [String], from generation: Generation) -> PayloadIndex {
        var built = PayloadIndex(fields: fields)
        for slot in 0..<UInt32(generation.index.slotHighWater) where generation.records.isLive(slot) {
            guard let record = generation.records.record(slot) else { continue }
            built.set(slot: slot, metadata: record.metadata)
        }
        built.compact()
        return built
    }
}

/// A field's values among a filter's matches (`Collection.facets`).
public struct Facets: Sendable, Equatable {
    public struct Value: Sendable, Equatable {
        public var value: MetadataValue
        public var count: Int
    }
    public static let maximumValues = 1_000

    public var field: String
    /// Records matching the filters.
    public var matched: Int
    /// Most common string and boolean values, most first (ties by value).
    public var values: [Value]
    public var minimum: Double?
    public var maximum: Double?
    /// Matching records holding a number in the field.
    public var numbers: Int
    /// Counted from the field's index (true) or from the records.
    public var indexed: Bool
}
