import Foundation
import SextantChroma
import SextantJSON
import SextantPayload
import SextantSQLite

/// A Chroma persist directory (Chroma 0.5 to 1.5), read without Chroma.
///
/// Chroma keeps each collection in two segments: a metadata segment in
/// `chroma.sqlite3` (ids, documents under `chroma:document`, metadata) and an
/// HNSW segment in a folder named by its id (vectors in hnswlib's files, the
/// id → label map in `index_metadata.pickle`). Writes go first to the
/// `embeddings_queue` table; each segment records in `max_seq_id` how far it
/// has applied the queue, and the HNSW segment persists only every
/// `sync_threshold` writes. A record's current state is therefore the
/// segment's state with the queue entries after that segment's position
/// replayed on top, which is what this reader does, per segment.
public final class ChromaPersistDirectory: ChromaSource {
    public let path: String
    let database: Database
    let tenant: String
    let databaseName: String
    public var description: String { "Chroma persist directory \(path)" }

    /// Chroma's queue operations.
    enum Operation: Int64 { case add = 0, update = 1, upsert = 2, delete = 3 }

    public init(path: String, tenant: String = "default_tenant", database databaseName: String = "default_database") throws {
        let file = path + "/chroma.sqlite3"
        guard FileManager.default.fileExists(atPath: file) else {
            throw ChromaImportError.format("\(path) holds no chroma.sqlite3")
        }
        self.path = path
        self.tenant = tenant
        self.databaseName = databaseName
        database = try Database(path: file, readOnly: true)
        // What this Chroma version's schema has, asked once rather than per page.
        hasQueue = try Self.hasTable(database, "embeddings_queue")
        hasArrayMetadata = try Self.hasTable(database, "embedding_metadata_array")
        metadataBoolColumn = try Self.hasColumn(database, "embedding_metadata", "bool_value") ? "bool_value" : "NULL"
    }

    let hasQueue: Bool
    /// Chroma 1.5 keeps array metadata values in their own table.
    let hasArrayMetadata: Bool
    /// `bool_value`, or NULL before Chroma stored booleans apart.
    let metadataBoolColumn: String

    static func hasTable(_ database: Database, _ name: String) throws -> Bool {
        !(try database.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [.text(name)])).isEmpty
    }

    static func hasColumn(_ database: Database, _ table: String, _ column: String) throws -> Bool {
        try database.query("PRAGMA table_info(\(table))").contains { $0.count > 1 && $0[1].text == column }
    }

    func hasColumn(_ table: String, _ column: String) throws -> Bool { try Self.hasColumn(database, table, column) }

    public func collections() async throws -> [ChromaCollection] {
        let columns = try ["dimension", "config_json_str", "schema_str"].map { try hasColumn("collections", $0) ? "c.\($0)" : "NULL" }
        var sql = "SELECT c.id, c.name, \(columns.joined(separator: ", ")) FROM collections c"
        var parameters: [SQLValue] = []
        if try hasColumn("collections", "database_id") {
            sql += " JOIN databases d ON d.id = c.database_id WHERE d.name = ? AND d.tenant_id = ?"
            parameters = [.text(databaseName), .text(tenant)]
        }
        var result: [ChromaCollection] = []
        let boolColumn = try hasColumn("collection_metadata", "bool_value") ? "bool_value" : "NULL"
        for row in try database.query(sql + " ORDER BY c.name", parameters) {
            guard let id = row[0].text, let name = row[1].text else { continue }
            let schema = try row[4].text.map { try JSON.parse($0) }
            let configuration = Self.configuration(stored: try row[3].text.map { try JSON.parse($0) }, schema: schema)
            var metadata: Metadata = [:]
            for entry in try database.query(
                "SELECT key, str_value, int_value, float_value, \(boolColumn) FROM collection_metadata WHERE collection_id = ?", [.text(id)])
            {
                guard let key = entry[0].text, let value = Self.value(entry[1], entry[2], entry[3], entry[4]) else { continue }
                metadata[key] = value
            }
            let segment = try metadataSegment(id)
            let count = try segment.map {
                try database.query("SELECT count(*) FROM embeddings WHERE segment_id = ?", [.text($0)]).first?.first?.integer
            } ?? nil
            result.append(ChromaCollection(id: id, name: name, dimension: row[2].integer.map { Int($0) }, metadata: metadata,
                                           configuration: configuration, schema: schema, count: count.map { Int($0) }))
        }
        return result
    }

    /// Chroma 1.x stores `{}` as the configuration and keeps the vector index's
    /// settings (space, embedding function) in the schema; its server answers
    /// with a configuration rebuilt from them, and so does this reader.
    static func configuration(stored: JSONValue?, schema: JSONValue?) -> JSONValue? {
        guard let settings = schema?["keys"]?["#embedding"]?["float_list"]?["vector_index"]?["config"],
              stored?["hnsw"] == nil, stored?["spann"] == nil
        else { return stored }
        var hnsw = settings["hnsw"]?.objectValue ?? [:]
        if let space = settings["space"] { hnsw["space"] = space }
        var fields = stored?.objectValue ?? [:]
        fields["hnsw"] = .object(hnsw)
        if fields["embedding_function"] == nil, let function = settings["embedding_function"] { fields["embedding_function"] = function }
        return .object(fields)
    }

    /// One typed value from Chroma's four (or five) value columns.
    static func value(_ string: SQLValue, _ int: SQLValue, _ float: SQLValue, _ bool: SQLValue) -> MetadataValue? {
        if let text = string.text { return .string(text) }
        if let value = bool.integer { return .bool(value != 0) }
        if let value = int.integer { return .int(value) }
        if let value = float.real { return .double(value) }
        return nil
    }

    func segment(_ collection: String, scope: String) throws -> String? {
        try database.query("SELECT id FROM segments WHERE collection = ? AND scope = ?", [.text(collection), .text(scope)]).first?.first?.text
    }

    func metadataSegment(_ collection: String) throws -> String? { try segment(collection, scope: "METADATA") }

    func maxSeqID(_ segment: String?) throws -> Int64 {
        guard let segment else { return 0 }
        guard let value = try database.query("SELECT seq_id FROM max_seq_id WHERE segment_id = ?", [.text(segment)]).first?.first else { return 0 }
        if let number = value.integer { return number }
        // Chroma 0.4 stored it as an 8-byte big-endian blob.
        if let blob = value.blob, blob.count == 8 { return blob.reduce(0) { $0 << 8 | Int64($1) } }
        return 0
    }

    public func version(_ collection: ChromaCollection) async throws -> String {
        let queue = hasQueue
            ? try database.query("SELECT max(seq_id) FROM embeddings_queue WHERE topic LIKE ?", [.text("%" + collection.id)]).first?.first?.integer ?? 0
            : 0
        let metadataPosition = try maxSeqID(try metadataSegment(collection.id))
        let vectorPosition = try maxSeqID(try segment(collection.id, scope: "VECTOR"))
        return "\(collection.id):\(metadataPosition):\(vectorPosition):\(queue)"
    }

    /// What a collection's state is, once loaded: the HNSW segment's vectors and
    /// the queue's entries after each segment's position, folded per id.
    struct State: Sendable {
        var vectors: HNSWLibVectors?
        var labels: [String: UInt64]
        /// id → the queue's last word on its metadata view (nil: deleted).
        var metadataOverlay: [String: QueuedRecord?]
        /// id → the queue's last word on its vector (nil: deleted).
        var vectorOverlay: [String: [Float]?]
        /// Records only the queue holds, in the order they arrived.
        var queuedOnly: [String]
        var lastRowID: Int64
    }

    struct QueuedRecord: Sendable {
        var document: String?
        var metadata: Metadata
        /// Keys whose values were arrays, kept as JSON text.
        var arrayKeys: Set<String> = []
    }

    let states = StateCache()

    final class StateCache: @unchecked Sendable {
        // Guarded by `lock`: an import reads one collection at a time, pages in order.
        let lock = NSLock()
        var states: [String: State] = [:]
    }

    func state(_ collection: ChromaCollection) throws -> State {
        if let state = states.lock.withLock({ states.states[collection.id] }) { return state }
        let state = try load(collection)
        states.lock.withLock { states.states[collection.id] = state }
        return state
    }

    func load(_ collection: ChromaCollection) throws -> State {
        let metadataSegmentID = try metadataSegment(collection.id)
        let vectorSegmentID = try segment(collection.id, scope: "VECTOR")
        var vectors: HNSWLibVectors? = nil
        var labels: [String: UInt64] = [:]
        if let vectorSegmentID {
            let folder = path + "/" + vectorSegmentID
            if FileManager.default.fileExists(atPath: folder + "/header.bin") { vectors = try HNSWLibVectors(folder: folder) }
            let picklePath = folder + "/index_metadata.pickle"
            if FileManager.default.fileExists(atPath: picklePath) {
                let pickle = try Pickle.parse([UInt8](try Data(contentsOf: URL(fileURLWithPath: picklePath))))
                guard let entries = pickle["id_to_label"]?.entries else {
                    throw ChromaImportError.format("\(picklePath) has no id_to_label map")
                }
                labels.reserveCapacity(entries.count)
                for (key, value) in entries {
                    guard case .string(let id) = key, case .int(let label) = value else {
                        throw ChromaImportError.format("\(picklePath): id_to_label holds a non-string id or non-integer label")
                    }
                    labels[id] = UInt64(bitPattern: label)
                }
            }
        }
        let lastRowID = try metadataSegmentID.map {
            try database.query("SELECT max(id) FROM embeddings WHERE segment_id = ?", [.text($0)]).first?.first?.integer
        } ?? nil
        var state = State(vectors: vectors, labels: labels, metadataOverlay: [:], vectorOverlay: [:], queuedOnly: [],
                          lastRowID: lastRowID ?? 0)
        guard hasQueue else { return state }
        let metadataPosition = try maxSeqID(metadataSegmentID)
        let vectorPosition = try maxSeqID(vectorSegmentID)
        let rows = try database.query(
            "SELECT seq_id, operation, vector, encoding, id, metadata FROM embeddings_queue WHERE topic LIKE ? AND seq_id > ? ORDER BY seq_id",
            [.text("%" + collection.id), .integer(min(metadataPosition, vectorPosition))])
        var seen: Set<String> = []
        var firstSeen: [String] = []
        var stored: [String: Bool] = [:]
        func isStored(_ id: String) throws -> Bool {
            if let known = stored[id] { return known }
            let known = try storedRecord(id, metadataSegmentID) != nil
            stored[id] = known
            return known
        }
        for row in rows {
            guard let sequence = row[0].integer, let code = row[1].integer, let operation = Operation(rawValue: code),
                  let id = row[4].text
            else { throw ChromaImportError.format("embeddings_queue holds an entry without a sequence, operation or id") }
            let vector = try Self.vector(row[2], encoding: row[3].text, dimension: collection.dimension)
            var removed: [String] = []
            var metadata: Metadata = [:]
            var arrayKeys: Set<String> = []
            if let text = row[5].text {
                (metadata, removed, arrayKeys) = try chromaMetadata(try JSON.parse(text))
            }
            if seen.insert(id).inserted { firstSeen.append(id) }
            if sequence > metadataPosition {
                try applyMetadata(&state, operation, id, metadata, removed, arrayKeys, metadataSegmentID)
            }
            if sequence > vectorPosition {
                let exists: Bool
                if let overlaid = state.vectorOverlay[id] { exists = overlaid != nil } else { exists = state.labels[id] != nil }
                switch operation {
                case .add: if !exists, let vector { state.vectorOverlay[id] = .some(vector) }
                case .upsert: if let vector { state.vectorOverlay[id] = .some(vector) }
                case .update: if exists, let vector { state.vectorOverlay[id] = .some(vector) }
                case .delete: state.vectorOverlay[id] = .some(nil)
                }
            }
        }
        state.queuedOnly = try firstSeen.filter { id in
            guard case .some(.some) = state.metadataOverlay[id] else { return false }
            return try !isStored(id)
        }
        return state
    }

    func applyMetadata(_ state: inout State, _ operation: Operation, _ id: String, _ metadata: Metadata, _ removed: [String],
                       _ arrayKeys: Set<String>, _ segment: String?) throws {
        // The record as the metadata view holds it before this entry.
        let current: QueuedRecord?
        if let overlaid = state.metadataOverlay[id] { current = overlaid } else { current = try storedRecord(id, segment) }
        var fields = metadata
        let document: String?? = fields.removeValue(forKey: chromaDocumentKey).map { value in
            if case .string(let text) = value { return text } else { return nil }
        }
        func merged(_ base: QueuedRecord) -> QueuedRecord {
            var record = base
            for key in removed {
                if key == chromaDocumentKey { record.document = nil } else { record.metadata[key] = nil }
                record.arrayKeys.remove(key)
            }
            for (key, value) in fields {
                record.metadata[key] = value
                if arrayKeys.contains(key) { record.arrayKeys.insert(key) } else { record.arrayKeys.remove(key) }
            }
            if let document { record.document = document }
            return record
        }
        let fresh = QueuedRecord(document: document ?? nil, metadata: fields, arrayKeys: arrayKeys)
        switch operation {
        case .add:
            guard current == nil else { return }
            state.metadataOverlay[id] = .some(fresh)
        case .upsert:
            state.metadataOverlay[id] = .some(current.map(merged) ?? fresh)
        case .update:
            guard let current else { return }
            state.metadataOverlay[id] = .some(merged(current))
        case .delete:
            state.metadataOverlay[id] = .some(nil)
        }
    }

    /// A record as the metadata segment stores it.
    func storedRecord(_ id: String, _ segment: String?) throws -> QueuedRecord? {
        guard let segment,
              let rowID = try database.query("SELECT id FROM embeddings WHERE segment_id = ? AND embedding_id = ?",
                                             [.text(segment), .text(id)]).first?.first?.integer
        else { return nil }
        return try records(rowIDs: rowID...rowID)[rowID]
    }

    /// Documents and metadata of the rows in a range of the embeddings table.
    func records(rowIDs: ClosedRange<Int64>) throws -> [Int64: QueuedRecord] {
        var result: [Int64: QueuedRecord] = [:]
        for row in try database.query(
            "SELECT id, key, string_value, int_value, float_value, \(metadataBoolColumn) FROM embedding_metadata WHERE id BETWEEN ? AND ?",
            [.integer(rowIDs.lowerBound), .integer(rowIDs.upperBound)])
        {
            guard let rowID = row[0].integer, let key = row[1].text else { continue }
            var record = result[rowID] ?? QueuedRecord(document: nil, metadata: [:])
            if key == chromaDocumentKey {
                record.document = row[2].text
            } else if !key.hasPrefix("chroma:"), let value = Self.value(row[2], row[3], row[4], row[5]) {
                record.metadata[key] = value
            }
            result[rowID] = record
        }
        if hasArrayMetadata {
            var arrays: [Int64: [String: [JSONValue]]] = [:]
            for row in try database.query(
                "SELECT id, key, string_value, int_value, float_value, bool_value FROM embedding_metadata_array WHERE id BETWEEN ? AND ? ORDER BY rowid",
                [.integer(rowIDs.lowerBound), .integer(rowIDs.upperBound)])
            {
                guard let rowID = row[0].integer, let key = row[1].text, let value = Self.value(row[2], row[3], row[4], row[5]) else { continue }
                arrays[rowID, default: [:]][key, default: []].append(ChromaGrammar.metadataJSON(["v": value])["v"] ?? .null)
            }
            for (rowID, keys) in arrays {
                for (key, items) in keys {
                    result[rowID, default: QueuedRecord(document: nil, metadata: [:])].metadata[key] = .string(JSON.serialize(.array(items)))
                    result[rowID]?.arrayKeys.insert(key)
                }
            }
        }
        return result
    }

    static func vector(_ blob: SQLValue, encoding: String?, dimension: Int?) throws -> [Float]? {
        guard let bytes = blob.blob, !bytes.isEmpty else { return nil }
        switch encoding ?? "FLOAT32" {
        case "FLOAT32":
            guard bytes.count % 4 == 0 else { throw ChromaImportError.format("a queued vector of \(bytes.count) bytes is not float32") }
            return stride(from: 0, to: bytes.count, by: 4).map { at in
                Float(bitPattern: UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24)
            }
        case "INT32":
            guard bytes.count % 4 == 0 else { throw ChromaImportError.format("a queued vector of \(bytes.count) bytes is not int32") }
            return stride(from: 0, to: bytes.count, by: 4).map { at in
                Float(Int32(bitPattern: UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24))
            }
        case let other:
            throw ChromaImportError.format("a queued vector has encoding \(other) (FLOAT32 or INT32 expected)")
        }
    }

    public func page(_ collection: ChromaCollection, from position: Int, limit: Int) async throws -> ChromaPage {
        precondition(limit > 0, "a page holds at least one record")
        let state = try state(collection)
        var output: [ChromaRecord] = []
        var skipped: [String] = []
        var arrays = 0
        func vector(_ id: String) -> [Float]? {
            if let overlaid = state.vectorOverlay[id] { return overlaid }
            return state.labels[id].flatMap { state.vectors?.vector(label: $0) }
        }
        func emit(_ id: String, _ record: QueuedRecord) {
            guard let vector = vector(id) else {
                skipped.append("\(id): no vector in the HNSW segment or the queue")
                return
            }
            output.append(ChromaRecord(id: id, vector: vector, document: record.document, metadata: record.metadata))
            arrays += record.arrayKeys.count
        }
        // Positions up to the last row id walk the metadata segment; beyond it, the queue's own records.
        if Int64(position) <= state.lastRowID, let segment = try metadataSegment(collection.id) {
            let rows = try database.query(
                "SELECT id, embedding_id FROM embeddings WHERE segment_id = ? AND id >= ? ORDER BY id LIMIT ?",
                [.text(segment), .integer(Int64(position)), .integer(Int64(limit))])
            if let first = rows.first?[0].integer, let last = rows.last?[0].integer {
                let stored = try records(rowIDs: first...last)
                for row in rows {
                    guard let rowID = row[0].integer, let id = row[1].text else { continue }
                    if let overlaid = state.metadataOverlay[id] {
                        if let record = overlaid { emit(id, record) }
                    } else {
                        emit(id, stored[rowID] ?? QueuedRecord(document: nil, metadata: [:]))
                    }
                }
                return ChromaPage(records: output, next: Int(last + 1), skipped: skipped, arraysAsText: arrays)
            }
        }
        let start = max(0, position - Int(state.lastRowID) - 1)
        let end = min(state.queuedOnly.count, start + limit)
        for id in state.queuedOnly[start..<max(start, end)] {
            if case .some(.some(let record)) = state.metadataOverlay[id] { emit(id, record) }
        }
        return ChromaPage(records: output, next: end < state.queuedOnly.count ? Int(state.lastRowID) + 1 + end : nil, skipped: skipped,
                          arraysAsText: arrays)
    }
}
