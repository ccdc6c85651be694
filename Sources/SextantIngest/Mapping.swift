import Foundation
import SextantClient
import SextantJSON
import SextantPayload

public enum IngestError: Error, Sendable, CustomStringConvertible, Equatable {
    case mapping(String)
    case source(String)
    case embedderMismatch(String)
    case engine(String)

    public var description: String {
        switch self {
        case .mapping(let message): return "mapping: \(message)"
        case .source(let message): return "source: \(message)"
        case .embedderMismatch(let message): return message
        case .engine(let message): return "engine: \(message)"
        }
    }
}

/// How CSV columns become a record. Documented in docs/INGEST.md; the one for
/// the shared debian-minilm batches is tools/mappings/debian-minilm.json.
public struct Mapping: Sendable, Equatable {
    public enum ColumnType: String, Sendable, Equatable { case string, int, float, bool }

    public struct Column: Sendable, Equatable {
        public var name: String
        public var type: ColumnType
        /// A missing or empty value sends the row to the quarantine.
        public var required: Bool
    }

    /// Where vectors come from when they were computed elsewhere: an fvecs file
    /// (given to the worker with --vectors) whose rows line up with the CSV
    /// rows, starting at `firstRow[file name]`.
    public struct PrecomputedVectors: Sendable, Equatable {
        public var embedder: String
        public var dimension: Int
        public var firstRow: [String: Int]
    }

    public var idColumn: String
    public var documentColumns: [String]
    public var documentSeparator: String
    public var metadata: [Column]
    /// Derived metadata: the N most frequent content words, as one string.
    public var keywords: Int
    public var maximumDocumentCharacters: Int
    public var precomputed: PrecomputedVectors?

    public static let maximumColumns = 256

    public init(idColumn: String = "id", documentColumns: [String] = ["document"], documentSeparator: String = "\n\n",
                metadata: [Column] = [], keywords: Int = 0, maximumDocumentCharacters: Int = 16_000,
                precomputed: PrecomputedVectors? = nil) {
        self.idColumn = idColumn
        self.documentColumns = documentColumns
        self.documentSeparator = documentSeparator
        self.metadata = metadata
        self.keywords = keywords
        self.maximumDocumentCharacters = maximumDocumentCharacters
        self.precomputed = precomputed
    }

    /// Without a mapping file: `id` is the id, the document is the first of
    /// document / text / content / body present (or title and body joined), and
    /// every other column is string metadata.
    public static func automatic(header: [String]) throws -> Mapping {
        guard header.contains("id") else { throw IngestError.mapping("no mapping file and no 'id' column in the header") }
        let documentColumns: [String]
        if let single = ["document", "text", "content"].first(where: header.contains) {
            documentColumns = [single]
        } else if header.contains("title") && header.contains("body") {
            documentColumns = ["title", "body"]
        } else if header.contains("body") {
            documentColumns = ["body"]
        } else {
            throw IngestError.mapping("no mapping file and no document, text, content or body column in the header")
        }
        let metadata = header.filter { $0 != "id" && !documentColumns.contains($0) && !$0.isEmpty }
            .prefix(maximumColumns).map { Column(name: $0, type: .string, required: false) }
        return Mapping(documentColumns: documentColumns, documentSeparator: documentColumns.count == 2 ? ". " : "\n\n",
                       metadata: Array(metadata))
    }

    public static func load(path: String) throws -> Mapping {
        guard let data = FileManager.default.contents(atPath: path), data.count <= 1 << 20 else {
            throw IngestError.mapping("cannot read \(path) (or it is over 1 MiB)")
        }
        let json: JSONValue
        do { json = try JSON.parse(Array(data)) } catch { throw IngestError.mapping("\(path): \(error)") }
        return try Mapping(json: json, origin: path)
    }

    public init(json: JSONValue, origin: String) throws {
        func fail(_ message: String) -> IngestError { .mapping("\(origin): \(message)") }
        guard case .object(let object) = json else { throw fail("expected a JSON object") }
        let known: Set<String> = ["id", "document", "metadata", "keywords", "limits", "precomputed_vectors", "comment"]
        if let unknown = object.keys.first(where: { !known.contains($0) }) { throw fail("unknown key '\(unknown)'") }
        guard let id = object["id"]?.stringValue, !id.isEmpty else { throw fail("'id' must name the id column") }
        idColumn = id
        switch object["document"] {
        case .string(let column)?:
            documentColumns = [column]
            documentSeparator = "\n\n"
        case .object(let document)?:
            guard let columns = document["columns"]?.arrayValue?.compactMap(\.stringValue), !columns.isEmpty,
                  columns.count == document["columns"]?.arrayValue?.count else {
                throw fail("'document.columns' must be a non-empty list of column names")
            }
            documentColumns = columns
            documentSeparator = document["separator"]?.stringValue ?? "\n\n"
        default:
            throw fail("'document' must be a column name or {\"columns\": [...], \"separator\": \"...\"}")
        }
        var columns: [Column] = []
        if let metadata = object["metadata"] {
            guard case .object(let fields) = metadata else { throw fail("'metadata' must map column names to types") }
            guard fields.count <= Self.maximumColumns else { throw fail("more than \(Self.maximumColumns) metadata columns") }
            for (name, spec) in fields.sorted(by: { $0.key < $1.key }) {
                var typeName = spec.stringValue
                var required = false
                if case .object(let detail) = spec {
                    typeName = detail["type"]?.stringValue
                    required = detail["required"]?.boolValue ?? false
                }
                guard let typeName, let type = ColumnType(rawValue: typeName) else {
                    throw fail("metadata column '\(name)': type must be string, int, float or bool")
                }
                columns.append(Column(name: name, type: type, required: required))
            }
        }
        metadata = columns
        keywords = Int(object["keywords"]?.intValue ?? 0)
        guard (0...32).contains(keywords) else { throw fail("'keywords' must be 0...32") }
        maximumDocumentCharacters = Int(object["limits"]?["document_characters"]?.intValue ?? 16_000)
        guard (1...1_000_000).contains(maximumDocumentCharacters) else { throw fail("'limits.document_characters' must be 1...1000000") }
        if let vectors = object["precomputed_vectors"] {
            guard let embedder = vectors["embedder"]?.stringValue, embedder.contains("@"),
                  let dimension = vectors["dimension"]?.intValue, (1...4_096).contains(dimension),
                  case .object(let rows)? = vectors["first_row"] else {
                throw fail("'precomputed_vectors' needs embedder (name@version), dimension and first_row {file: row}")
            }
            var firstRow: [String: Int] = [:]
            for (file, row) in rows {
                guard let row = row.intValue, row >= 0 else { throw fail("precomputed_vectors.first_row.\(file) must be a row number") }
                firstRow[file] = Int(row)
            }
            precomputed = PrecomputedVectors(embedder: embedder, dimension: Int(dimension), firstRow: firstRow)
        } else {
            precomputed = nil
        }
    }

    /// Checks the header has every column the mapping names; returns their positions.
    func resolve(header: [String]) throws -> ResolvedMapping {
        var positions: [String: Int] = [:]
        for (index, name) in header.enumerated() where positions[name] == nil { positions[name] = index }
        func position(_ name: String) throws -> Int {
            guard let index = positions[name] else { throw IngestError.mapping("column '\(name)' is not in the header (\(header.joined(separator: ",")))") }
            return index
        }
        return ResolvedMapping(
            mapping: self, id: try position(idColumn), document: try documentColumns.map(position),
            metadata: try metadata.map { ($0, try position($0.name)) }, columnCount: header.count)
    }
}

/// A row that passed the mapping: ready for enrichment and embedding.
public struct IngestRow: Sendable {
    public var id: String
    public var document: String
    public var metadata: Metadata
    /// 0-based data row in its file (the header is not a row).
    public var row: Int
    public var line: Int
}

struct ResolvedMapping: Sendable {
    let mapping: Mapping
    let id: Int
    let document: [Int]
    let metadata: [(Mapping.Column, Int)]
    let columnCount: Int

    /// `trimmingCharacters(in: .whitespaces)`, without the trip through
    /// NSString when the field starts and ends with a visible ASCII character
    /// (which it nearly always does: a profile had the trip at 14% of the worker).
    static func trimmed(_ field: String) -> String {
        guard let first = field.utf8.first, let last = field.utf8.last else { return field }
        let visible: (UInt8) -> Bool = { $0 > 0x20 && $0 < 0x7F }
        if visible(first) && visible(last) { return field }
        return field.trimmingCharacters(in: .whitespaces)
    }

    /// The row as a record, or the reason it goes to the quarantine.
    func convert(_ fields: [String], row: Int, line: Int) -> Result<IngestRow, RowProblem> {
        guard fields.count == columnCount else {
            return .failure(RowProblem("expected \(columnCount) fields, found \(fields.count)"))
        }
        let id = Self.trimmed(fields[id])
        guard !id.isEmpty else { return .failure(RowProblem("missing id ('\(mapping.idColumn)' is empty)")) }
        guard id.utf8.count <= 1_024 else { return .failure(RowProblem("id exceeds 1024 bytes")) }
        var parts: [String] = []
        for index in document {
            let value = fields[index]
            if !value.isEmpty { parts.append(value) }
        }
        let document = parts.joined(separator: mapping.documentSeparator)
        guard !document.isEmpty else { return .failure(RowProblem("empty document (\(mapping.documentColumns.joined(separator: ", ")))")) }
        var metadata: Metadata = [:]
        for (column, index) in self.metadata {
            let text = Self.trimmed(fields[index])
            if text.isEmpty {
                if column.required { return .failure(RowProblem("missing value for required column '\(column.name)'")) }
                continue
            }
            switch column.type {
            case .string:
                guard fields[index].utf8.count <= 65_536 else { return .failure(RowProblem("'\(column.name)' exceeds 64 KiB")) }
                metadata[column.name] = .string(fields[index])
            case .int:
                guard let value = Int64(text) else { return .failure(RowProblem("'\(column.name)' is not an integer: '\(text.prefix(40))'")) }
                metadata[column.name] = .int(value)
            case .float:
                guard let value = Double(text), value.isFinite else {
                    return .failure(RowProblem("'\(column.name)' is not a finite number: '\(text.prefix(40))'"))
                }
                metadata[column.name] = .double(value)
            case .bool:
                switch text.lowercased() {
                case "true", "1", "yes": metadata[column.name] = .bool(true)
                case "false", "0", "no": metadata[column.name] = .bool(false)
                default: return .failure(RowProblem("'\(column.name)' is not a boolean: '\(text.prefix(40))'"))
                }
            }
        }
        return .success(IngestRow(id: id, document: document, metadata: metadata, row: row, line: line))
    }
}

struct RowProblem: Error, Sendable {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}
