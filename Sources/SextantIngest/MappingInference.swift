import Foundation
import SextantJSON
import SextantPayload

/// A mapping read off a CSV's header and a sample of its rows, for files that
/// come without one: which column is the id, which columns make the document,
/// and a type for every other column, so that `{"value_eur": {"$gt": 1000000}}`
/// filters numbers, not strings. Written next to the data for the user to
/// read and edit (`Mapping.json`); an edited file wins from then on.
public enum MappingInference {
    /// Rows read to decide (enough to see a date past the 12th of a month).
    public static let sampleRows = 1_000
    /// A sampled field longer than this is cut (to a quarter as many characters) before inference.
    public static let sampleFieldBytes = 16_384

    public struct Result: Sendable {
        public var mapping: Mapping
        /// One line per decision, for the log and `--suggest-mapping`.
        public var notes: [String]
    }

    static func normalized(_ name: String) -> String {
        name.lowercased().filter { $0.isLetter || $0.isNumber }
    }

    /// Infers a mapping from `header` and up to `sampleRows` rows (each as many fields as the header).
    public static func infer(header: [String], sample: [[String]]) throws -> Result {
        guard !header.isEmpty, header.contains(where: { !$0.isEmpty }) else { throw IngestError.mapping("the header is empty") }
        var notes: [String] = []
        let rows = sample.filter { $0.count == header.count }
        func values(_ column: Int) -> [String] {
            rows.map { ResolvedMapping.trimmed($0[column]) }.filter { !$0.isEmpty }
        }

        // The id: `id`, else a unique column named like one, else the row's content.
        var idColumn: String?
        if let exact = header.first(where: { normalized($0) == "id" }) {
            idColumn = exact
        } else {
            let named = header.indices.filter { index in
                let name = header[index].lowercased()
                let plain = normalized(name)
                return name.hasSuffix("_id") || name.hasSuffix("-id") || name.hasSuffix(" id") || plain.hasSuffix("id")
                    || ["ref", "reference", "code", "key", "uuid", "guid"].contains(plain)
            }
            idColumn = named.first { index in
                let found = values(index)
                return found.count == rows.count && Set(found).count == found.count && found.allSatisfy { $0.utf8.count <= 1_024 }
            }.map { header[$0] }
        }
        if let idColumn {
            notes.append("id: column '\(idColumn)'")
        } else {
            notes.append("id: no id column (none named id, *_id, ref, reference or code holds unique values), so each record's id is a hash of its row: an edited row becomes a new record")
        }

        // Types for every other column.
        var types: [Int: Mapping.Column] = [:]
        for index in header.indices where header[index] != idColumn && !header[index].isEmpty {
            types[index] = column(header[index], values(index), &notes)
        }

        // The document: string columns that read like prose, title-like first, else in header order.
        func isProse(_ index: Int) -> Bool {
            guard types[index]?.type == .string else { return false }
            let found = values(index)
            guard !found.isEmpty else { return false }
            let words = found.reduce(0) { $0 + $1.split(whereSeparator: { $0 == " " }).count }
            let distinct = Set(found).count
            // Several words on average and varied (a category column repeats its few
            // values), or sentences however often they repeat.
            let averageWords = Double(words) / Double(found.count)
            return averageWords >= 6 || (averageWords >= 3 && Double(distinct) >= 0.5 * Double(found.count))
        }
        func isTitle(_ name: String) -> Bool {
            let plain = normalized(name)
            // English, and the words French, German, Italian and Spanish exports use.
            return ["title", "name", "subject", "headline", "heading", "summary", "titre", "titel", "titolo", "titulo", "título", "objet"]
                .contains { plain.contains($0) }
        }
        var documentIndices = header.indices.filter(isProse)
        let titles = header.indices.filter { types[$0]?.type == .string && isTitle(header[$0]) && !documentIndices.contains($0) }
        documentIndices = titles + documentIndices
        documentIndices.sort { (isTitle(header[$0]) ? 0 : 1, $0) < (isTitle(header[$1]) ? 0 : 1, $1) }
        if documentIndices.isEmpty {
            // No prose: the string column with the longest values.
            let strings = header.indices.filter { types[$0]?.type == .string }
            if let longest = strings.max(by: { average(values($0)) < average(values($1)) }) { documentIndices = [longest] }
        }
        guard !documentIndices.isEmpty else {
            throw IngestError.mapping("no column holds text to search (every column is a number, a date or a flag); write a mapping naming the document columns")
        }
        let documentColumns = documentIndices.map { header[$0] }
        notes.append("document: \(documentColumns.map { "'\($0)'" }.joined(separator: " + "))")
        let metadata = header.indices.filter { types[$0] != nil && !documentIndices.contains($0) }.compactMap { types[$0] }
        for column in metadata {
            notes.append("metadata '\(column.name)': \(column.describe)")
        }
        var mapping = Mapping(idColumn: idColumn ?? "", documentColumns: documentColumns,
                              documentSeparator: documentColumns.count > 1 ? ". " : "\n\n", metadata: Array(metadata.prefix(Mapping.maximumColumns)))
        mapping.idFromContent = idColumn == nil
        return Result(mapping: mapping, notes: notes)
    }

    static func average(_ values: [String]) -> Double {
        values.isEmpty ? 0 : Double(values.reduce(0) { $0 + $1.count }) / Double(values.count)
    }

    /// Digits only, with a leading zero ("01234") or a plus sign ("+3361…").
    static func isCodeLike(_ text: String) -> Bool {
        let digits = text.hasPrefix("+") ? text.dropFirst() : Substring(text)
        guard digits.count > 1, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return false }
        return text.hasPrefix("+") || digits.first == "0"
    }

    /// The narrowest type every sampled value of the column parses as.
    static func column(_ name: String, _ values: [String], _ notes: inout [String]) -> Mapping.Column {
        var column = Mapping.Column(name: name, type: .string, required: false)
        guard !values.isEmpty else { return column }
        let lowered = Set(values.map { $0.lowercased() })
        if lowered.isSubset(of: ["true", "false", "yes", "no", "y", "n"]) {
            column.type = .bool
            return column
        }
        // "01234" is a postcode and "+33 6…" a phone number, not quantities: a
        // leading zero before more digits, or a written plus sign, means the
        // text is a code, and typing it as a number would lose what it says.
        if let code = values.first(where: Self.isCodeLike) {
            notes.append("metadata '\(name)': kept as text: values such as '\(code.prefix(40))' are written as codes (a leading zero or plus sign)")
            return column
        }
        if let number = NumberFormat.infer(values) {
            column.type = number.isInteger ? .int : .float
            column.decimalSeparator = number.decimal
            column.thousandsSeparator = number.thousands
            return column
        }
        switch DateFormat.infer(values) {
        case .format(let format):
            column.type = format.hasTime ? .datetime : .date
            column.dateFormat = format
        case .ambiguous(let reason):
            notes.append("metadata '\(name)': kept as text: \(reason); name its format in the mapping (\"format\": \"DD/MM/YYYY\" or \"MM/DD/YYYY\")")
        case nil: break
        }
        return column
    }
}

/// How numbers are written in a column: the decimal separator, and the
/// thousands separator if any, decided from every sampled value.
struct NumberFormat: Equatable, Sendable {
    var decimal: Character
    var thousands: Character?
    var isInteger: Bool

    static func infer(_ values: [String]) -> NumberFormat? {
        // Candidates in order of likelihood; the first every value parses under wins.
        let formats: [NumberFormat] = [
            NumberFormat(decimal: ".", thousands: nil, isInteger: true),
            NumberFormat(decimal: ".", thousands: nil, isInteger: false),
            NumberFormat(decimal: ".", thousands: ",", isInteger: true),
            NumberFormat(decimal: ".", thousands: ",", isInteger: false),
            NumberFormat(decimal: ",", thousands: nil, isInteger: false),
            NumberFormat(decimal: ",", thousands: ".", isInteger: true),
            NumberFormat(decimal: ",", thousands: ".", isInteger: false),
            NumberFormat(decimal: ".", thousands: " ", isInteger: false),
            NumberFormat(decimal: ",", thousands: " ", isInteger: false),
        ]
        // "1,234" alone reads as a thousand and as one point two: the sample decides
        // (a value like "2,5" or "1,234,567"), and an integer reading wins a tie.
        return formats.first { format in values.allSatisfy { format.parse($0) != nil } }
    }

    /// The value, or nil when `text` is not a number written this way. Groups
    /// of three digits after the first separator-delimited group, as written.
    func parse(_ text: String) -> Double? {
        var body = Substring(text)
        var negative = false
        if body.first == "-" || body.first == "+" {
            negative = body.first == "-"
            body = body.dropFirst()
        }
        guard !body.isEmpty else { return nil }
        let parts = body.split(separator: decimal, maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count <= (isInteger ? 1 : 2), let whole = parts.first, !whole.isEmpty else { return nil }
        if parts.count == 2 { guard !parts[1].isEmpty, parts[1].allSatisfy(\.isASCIIDigit) else { return nil } }
        var digits = ""
        if let thousands {
            let groups = whole.split(separator: thousands, omittingEmptySubsequences: false)
            guard let first = groups.first, (1...3).contains(first.count) || groups.count == 1,
                  groups.dropFirst().allSatisfy({ $0.count == 3 }), groups.allSatisfy({ $0.allSatisfy(\.isASCIIDigit) && !$0.isEmpty })
            else { return nil }
            digits = groups.joined()
        } else {
            guard whole.allSatisfy(\.isASCIIDigit) else { return nil }
            digits = String(whole)
        }
        if parts.count == 2 { digits += "." + parts[1] }
        guard let value = Double(digits), value.isFinite else { return nil }
        if isInteger, value > 9.2e18 { return nil }
        return negative ? -value : value
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
