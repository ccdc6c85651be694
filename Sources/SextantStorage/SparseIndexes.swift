import SextantPayload
import SextantText

/// A collection's sparse indexes, one per declared metadata key. Changed and
/// read as `CollectionTextIndex` is: each batch's changes are made on a copy
/// (sharing every list it does not touch) and swapped in between readers at
/// the end of the batch's apply, so an acknowledged write is searchable and
/// no query waits for a batch.
///
/// Durable like the text index: a checkpoint writes every key's index into
/// one checksummed file (`fileName`) of the generation; an open reads it and
/// replays the WAL after the checkpoint through `apply`. A generation without
/// the file, or with another format version, builds them from the records.
final class CollectionSparseIndexes: @unchecked Sendable {
    static let fileName = "sparse.idx"
    static let magic: [UInt8] = Array("SXSPKEYS".utf8) + [0, 1]

    /// One record's change: its metadata's encoded bytes, nil when the slot no longer holds it.
    struct Change {
        var slot: UInt32
        var metadata: [UInt8]?
    }

    private let lock = ReadWriteLock()
    /// Guarded by `lock`: each declared key's index and whether it is BM25.
    private var indexes: [String: SparseIndex] = [:]
    private var bm25Keys: Set<String> = []

    var isEnabled: Bool { lock.withShared { !indexes.isEmpty } }

    /// Replaces every index (open, replay of a configuration).
    func reset(_ settings: [SparseIndexSettings], _ replacement: [String: SparseIndex]) {
        precondition(Set(replacement.keys) == Set(settings.map(\.key)), "one index per declared key")
        precondition(replacement.values.allSatisfy { !$0.needsCompaction }, "indexes are compacted before they are served")
        let replaced = lock.withExclusiveBetweenReaders { () -> [String: SparseIndex] in
            defer {
                indexes = replacement
                bm25Keys = Set(settings.filter(\.bm25).map(\.key))
            }
            return indexes
        }
        _ = replaced
    }

    /// One batch's changes, made on a copy and swapped in (under the collection's writer lock).
    func apply(_ changes: [Change]) {
        guard !changes.isEmpty else { return }
        var working = lock.withShared { indexes }
        guard !working.isEmpty else { return }
        for key in Array(working.keys) {
            guard var index = working.removeValue(forKey: key) else { continue }
            var changed = false
            for change in changes {
                let vector = change.metadata.flatMap { metadata in
                    metadata.withUnsafeBytes { MetadataCodec.value(of: key, in: $0) }
                }
                if case .sparseVector(let vector)? = vector {
                    index.set(slot: change.slot, indices: vector.indices, values: vector.values)
                    changed = true
                } else if index.documentCount > 0 {
                    index.remove(slot: change.slot)
                    changed = true
                }
            }
            if changed { index.compact() }
            working[key] = index
        }
        let replaced = lock.withExclusiveBetweenReaders { () -> [String: SparseIndex] in
            defer { indexes = working }
            return indexes
        }
        _ = replaced
    }

    /// The exact top `k` by dot product among accepted slots; nil when `key` has no index.
    /// `liveRecords` is the n of a BM25 key's IDF.
    func search(key: String, _ query: SparseVector, k: Int, liveRecords: Int, accept: ((UInt32) -> Bool)?) -> [BM25Index.Hit]? {
        lock.withShared {
            guard let index = indexes[key] else { return nil }
            return index.searchCompacted(indices: query.indices, values: query.values, k: k,
                                         idfDocuments: bm25Keys.contains(key) ? liveRecords : nil, accept: accept)
        }
    }

    /// Every key's index in one stored form, nil without indexes (writers paused).
    func serialized() -> [UInt8]? {
        lock.withExclusive { () -> [UInt8]? in
            guard !indexes.isEmpty else { return nil }
            var out = Self.magic
            func put<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) } }
            put(UInt32(indexes.count))
            for key in indexes.keys.sorted() {
                guard var index = indexes[key] else { continue }
                let bytes = index.serialized()
                put(UInt16(key.utf8.count))
                out.append(contentsOf: key.utf8)
                put(UInt64(bytes.count))
                out.append(contentsOf: bytes)
            }
            return out
        }
    }

    /// Indexes of every live record's sparse vectors in `generation`, one per declared key.
    static func build(_ settings: [SparseIndexSettings], from generation: Generation) -> [String: SparseIndex] {
        var built = Dictionary(uniqueKeysWithValues: settings.map { ($0.key, SparseIndex()) })
        for slot in 0..<UInt32(generation.index.slotHighWater) where generation.records.isLive(slot) {
            guard let record = generation.records.record(slot) else { continue }
            for setting in settings {
                if case .sparseVector(let vector)? = MetadataCodec.value(of: setting.key, in: record.metadata) {
                    built[setting.key]?.set(slot: slot, indices: vector.indices, values: vector.values)
                }
            }
        }
        for key in Array(built.keys) { built[key]?.compact() }
        return built
    }

    /// The indexes a generation's file holds, if it is there, of this format
    /// version and for exactly the declared keys; nil means build them.
    static func load(disk: Files, directory: String, manifest: Manifest, settings: [SparseIndexSettings]) throws -> [String: SparseIndex]? {
        guard manifest.files[fileName] != nil else { return nil }
        let path = directory + "/" + fileName
        let bytes = try disk.readAll(path)
        do {
            let loaded = try parse(bytes)
            guard Set(loaded.keys) == Set(settings.map(\.key)) else { return nil }
            return loaded
        } catch {
            // The file's checksum held, so this is another format version.
            StorageLog.write("\(path): \(error); rebuilding the sparse indexes from the records")
            return nil
        }
    }

    private static func parse(_ bytes: [UInt8]) throws(BM25Index.FormatError) -> [String: SparseIndex] {
        guard bytes.count >= magic.count + 4, bytes.prefix(magic.count).elementsEqual(magic) else {
            throw .corrupted("not a sparse index file of this format version")
        }
        var offset = magic.count
        func take<T: FixedWidthInteger>(_: T.Type) throws(BM25Index.FormatError) -> T {
            let size = MemoryLayout<T>.size
            guard offset + size <= bytes.count else { throw .corrupted("sparse index file truncated at byte \(offset)") }
            var value: T = 0
            for position in 0..<size { value |= T(bytes[offset + position]) << (8 * position) }
            offset += size
            return value
        }
        let count = Int(try take(UInt32.self))
        guard count <= SparseIndexSettings.maximumIndexes else { throw .corrupted("\(count) sparse indexes") }
        var result: [String: SparseIndex] = [:]
        for _ in 0..<count {
            let keyLength = Int(try take(UInt16.self))
            guard offset + keyLength <= bytes.count,
                  let key = String(validating: bytes[offset..<offset + keyLength], as: UTF8.self)
            else { throw .corrupted("sparse index key") }
            offset += keyLength
            let length = Int(try take(UInt64.self))
            guard length >= 0, length <= bytes.count - offset else { throw .corrupted("sparse index '\(key)' past the end") }
            result[key] = try SparseIndex(serialized: Array(bytes[offset..<offset + length]))
            offset += length
        }
        guard offset == bytes.count else { throw .corrupted("bytes after the last sparse index") }
        return result
    }
}
