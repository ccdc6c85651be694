import Foundation
import SextantClient
import SextantJSON
import SextantPayload

/// How CSV columns become a record. Documented in docs/INGEST.md; the one for
/// the shared debian-minilm batches is tools/mappings/debian-minilm.json.
public struct Mapping: Sendable, Equatable {
    public enum ColumnType: String, Sendable, Equatable { case string, int, float, bool, date, datetime }

    public struct Column: Sendable, Equatable {
        public var name: String
        public var type: ColumnType
        /// A missing or empty value sends the row to the quarantine.
        public var required: Bool
        /// Numbers: how they are written ("1.234,5": decimal ",", thousands ".").
        var decimalSeparator: Character = "."
        var thousandsSeparator: Character?
        /// Dates: the layout (`DateFormat.name`); stored as epoch seconds, with
        /// the text as written under `NAME_text`.
        var dateFormat: DateFormat?

        public init(name: String, type: ColumnType, required: Bool) {
            self.name = name
            self.type = type
            self.required = required
        }

        /// For the log: "int", "float (decimal ',', thousands '.')", "date DD/MM/YYYY → epoch seconds".
        var describe: String {
            switch type {
            case .int, .float:
                var parts: [String] = []
                if decimalSeparator != "." { parts.append("decimal '\(decimalSeparator)'") }
                if let thousandsSeparator { parts.append("thousands '\(thousandsSeparator)'") }
                return type.rawValue + (parts.isEmpty ? "" : " (" + parts.joined(separator: ", ") + ")")
            case .date, .datetime:
                return "\(type.rawValue) \(dateFormat?.name ?? "?") → epoch seconds, the text in '\(name)_text'"
            case .string, .bool: return type.rawValue
            }
        }

        var json: JSONValue {
            var object: [String: JSONValue] = ["type": .string(type.rawValue)]
            if required { object["required"] = .bool(true) }
            if decimalSeparator != "." { object["decimal"] = .string(String(decimalSeparator)) }
            if let thousandsSeparator { object["thousands"] = .string(String(thousandsSeparator)) }
            if let dateFormat { object["format"] = .string(dateFormat.name) }
            return object.count == 1 ? .string(type.rawValue) : .object(object)
        }
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
    /// No id column: each record's id is a hash of its row's fields.
    public var idFromContent = false
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
        let known: Set<String> = ["id", "document", "metadata", "keywords", "limits", "precomputed_vectors", "comment", "inferred"]
        if let unknown = object.keys.first(where: { !known.contains($0) }) { throw fail("unknown key '\(unknown)'") }
        if case .object(let idSpec)? = object["id"], idSpec["from"]?.stringValue == "content" {
            idColumn = ""
            idFromContent = true
        } else {
            guard let id = object["id"]?.stringValue, !id.isEmpty else {
                throw fail("'id' must name the id column (or be {\"from\": \"content\"})")
            }
            idColumn = id
        }
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
                var detail: [String: JSONValue] = [:]
                if case .object(let given) = spec {
                    detail = given
                    typeName = given["type"]?.stringValue
                    required = given["required"]?.boolValue ?? false
                }
                guard let typeName, let type = ColumnType(rawValue: typeName) else {
                    throw fail("metadata column '\(name)': type must be string, int, float, bool, date or datetime")
                }
                var column = Column(name: name, type: type, required: required)
                if let decimal = detail["decimal"]?.stringValue {
                    guard decimal.count == 1, let character = decimal.first, ".,".contains(character) else {
                        throw fail("metadata column '\(name)': 'decimal' must be \".\" or \",\"")
                    }
                    column.decimalSeparator = character
                }
                if let thousands = detail["thousands"]?.stringValue {
                    guard thousands.count == 1, let character = thousands.first, ".,  '".contains(character),
                          character != column.decimalSeparator
                    else { throw fail("metadata column '\(name)': 'thousands' must be one of . , space ' and not the decimal separator") }
                    column.thousandsSeparator = character
                }
                if type == .date || type == .datetime {
                    let name = detail["format"]?.stringValue ?? (type == .date ? "YYYY-MM-DD" : "YYYY-MM-DD HH:MM:SS")
                    guard var format = DateFormat(name: name) else {
                        throw fail("metadata column '\(column.name)': format '\(name)' is not one of YYYY-MM-DD, DD/MM/YYYY, MM/DD/YYYY (with - / or . between), optionally followed by HH:MM[:SS]")
                    }
                    format.hasTime = format.hasTime || type == .datetime
                    column.dateFormat = format
                }
                columns.append(column)
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
            mapping: self, id: idFromContent ? nil : try position(idColumn), document: try documentColumns.map(position),
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
    /// Nil: the id is a hash of the row (`Mapping.idFromContent`).
    let id: Int?
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
        let id = self.id.map { Self.trimmed(fields[$0]) } ?? Self.contentID(fields)
        guard !id.isEmpty else { return .failure(RowProblem("missing id ('\(mapping.idColumn)' is empty)")) }
        guard id.utf8.count <= 1_024 else { return .failure(RowProblem("id exceeds 1024 bytes")) }
        var parts: [String] = []
        for index in document {
            let value = fields[index]
            if !value.isEmpty { parts.append(value) }
        }
        var document = parts.joined(separator: mapping.documentSeparator)
        // The cleanup later cuts the document at a word boundary within the
        // bound; a row far longer than that is not carried whole until then.
        if document.utf8.count > mapping.maximumDocumentCharacters * 16 {
            document = String(document.prefix(mapping.maximumDocumentCharacters * 4))
        }
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
                if column.thousandsSeparator == nil, let value = Int64(text) {
                    metadata[column.name] = .int(value)
                } else if let value = NumberFormat(decimal: column.decimalSeparator, thousands: column.thousandsSeparator, isInteger: true)
                    .parse(text), let whole = Int64(exactly: value) {
                    metadata[column.name] = .int(whole)
                } else {
                    return .failure(RowProblem("'\(column.name)' is not an integer: '\(text.prefix(40))'"))
                }
            case .float:
                let value = column.decimalSeparator == "." && column.thousandsSeparator == nil
                    ? Double(text) : NumberFormat(decimal: column.decimalSeparator, thousands: column.thousandsSeparator, isInteger: false).parse(text)
                guard let value, value.isFinite else {
                    return .failure(RowProblem("'\(column.name)' is not a finite number: '\(text.prefix(40))'"))
                }
                metadata[column.name] = .double(value)
            case .date, .datetime:
                guard let format = column.dateFormat, let seconds = format.epochSeconds(text) else {
                    return .failure(RowProblem("'\(column.name)' is not a date as \(column.dateFormat?.name ?? "?"): '\(text.prefix(40))'"))
                }
                metadata[column.name] = .int(seconds)
                metadata[column.name + "_text"] = .string(text)
            case .bool:
                switch text.lowercased() {
                case "true", "1", "yes", "y": metadata[column.name] = .bool(true)
                case "false", "0", "no", "n": metadata[column.name] = .bool(false)
                default: return .failure(RowProblem("'\(column.name)' is not a boolean: '\(text.prefix(40))'"))
                }
            }
        }
        return .success(IngestRow(id: id, document: document, metadata: metadata, row: row, line: line))
    }
}

extension ResolvedMapping {
    /// A stable id from the row's fields: the same row always gets the same
    /// id, so re-ingesting a file replaces its records instead of doubling them.
    static func contentID(_ fields: [String]) -> String {
        var first: UInt64 = 0xcbf2_9ce4_8422_2325
        var second: UInt64 = 0x8422_2325_cbf2_9ce4
        for field in fields {
            for byte in field.utf8 {
                first = (first ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
                second = (second ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 &+ 0x9e37
            }
            first = (first ^ 0x1f) &* 0x0000_0100_0000_01b3
            second = (second ^ 0x1f) &* 0x0000_0100_0000_01b3 &+ 0x9e37
        }
        return "row-" + String(first, radix: 16).leftPadded(16) + String(second, radix: 16).leftPadded(16)
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}

extension Mapping {
    /// The mapping as a mapping file says it (what `MappingInference` writes for the user to edit).
    public var json: JSONValue {
        var object: [String: JSONValue] = [:]
        object["id"] = idFromContent ? .object(["from": .string("content")]) : .string(idColumn)
        object["document"] = documentColumns.count == 1 && documentSeparator == "\n\n"
            ? .string(documentColumns[0])
            : .object(["columns": .array(documentColumns.map(JSONValue.string)), "separator": .string(documentSeparator)])
        object["metadata"] = .object(Dictionary(metadata.map { ($0.name, $0.json) }, uniquingKeysWith: { first, _ in first }))
        if keywords > 0 { object["keywords"] = .int(Int64(keywords)) }
        return .object(object)
    }
}

struct RowProblem: Error, Sendable {
    let reason: String
    init(_ reason: String) { self.reason = reason }
}
