import Foundation
import SextantJSON

/// A mapping read off a CSV's header and a sample of its rows, for files that
/// come without one: which column is the id, which columns make the document,
/// and a type for every other column, so that `{"value_eur": {"$gt": 1000000}}`
/// filters numbers, not strings. Written next to the data for the user to
/// read and edit (`Mapping.json`); an edited file wins from then on.
public enum MappingInference {
    /// Rows read to decide (enough to see a date past the 12th of a month).
    public static let sampleRows = 1_000

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
            return ["title", "name", "subject", "headline", "heading", "summary"].contains { plain.contains($0) }
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

    /// The narrowest type every sampled value of the column parses as.
    static func column(_ name: String, _ values: [String], _ notes: inout [String]) -> Mapping.Column {
        var column = Mapping.Column(name: name, type: .string, required: false)
        guard !values.isEmpty else { return column }
        let lowered = Set(values.map { $0.lowercased() })
        if lowered.isSubset(of: ["true", "false", "yes", "no", "y", "n"]) {
            column.type = .bool
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

/// Date and date-time layouts a feed writes, named as a mapping names them.
struct DateFormat: Equatable, Sendable {
    enum Order: String, Sendable { case ymd, dmy, mdy }
    var order: Order
    var separator: Character
    var hasTime: Bool

    /// The mapping's spelling: `YYYY-MM-DD`, `DD/MM/YYYY`, `MM/DD/YYYY`, `DD.MM.YYYY`…, with ` HH:MM[:SS]` or ISO 8601's `T…`.
    var name: String {
        let sep = String(separator)
        let date: String
        switch order {
        case .ymd: date = "YYYY\(sep)MM\(sep)DD"
        case .dmy: date = "DD\(sep)MM\(sep)YYYY"
        case .mdy: date = "MM\(sep)DD\(sep)YYYY"
        }
        return hasTime ? date + " HH:MM:SS" : date
    }

    init(order: Order, separator: Character, hasTime: Bool) {
        self.order = order
        self.separator = separator
        self.hasTime = hasTime
    }

    init?(name: String) {
        var text = name.uppercased()
        var time = false
        for suffix in [" HH:MM:SS", " HH:MM", "THH:MM:SS", "THH:MM"] where text.hasSuffix(suffix) {
            text.removeLast(suffix.count)
            time = true
            break
        }
        guard text.count == 10 else { return nil }
        let separator = text[text.index(text.startIndex, offsetBy: text.hasPrefix("YYYY") ? 4 : 2)]
        guard "-/.".contains(separator) else { return nil }
        let sep = String(separator)
        switch text {
        case "YYYY\(sep)MM\(sep)DD": self.init(order: .ymd, separator: separator, hasTime: time)
        case "DD\(sep)MM\(sep)YYYY": self.init(order: .dmy, separator: separator, hasTime: time)
        case "MM\(sep)DD\(sep)YYYY": self.init(order: .mdy, separator: separator, hasTime: time)
        default: return nil
        }
    }

    enum Inference: Equatable {
        case format(DateFormat)
        case ambiguous(String)
    }

    /// The layout every sampled value parses under. Day-first and month-first
    /// are told apart by a value whose first or second part passes 12; a
    /// sample with neither is ambiguous and refused, not guessed.
    static func infer(_ values: [String]) -> Inference? {
        guard let first = values.first, let separator = first.first(where: { "-/.".contains($0) }) else { return nil }
        let hasTime = values.contains { $0.count > 10 }
        let orders: [Order] = [.ymd, .dmy, .mdy]
        let fitting = orders.filter { order in
            let format = DateFormat(order: order, separator: separator, hasTime: hasTime)
            return values.allSatisfy { format.epochSeconds($0) != nil }
        }
        // Times are optional per value when the column has them.
        if fitting.isEmpty, hasTime {
            let withoutTime = orders.filter { order in
                let format = DateFormat(order: order, separator: separator, hasTime: true)
                return values.allSatisfy { format.epochSeconds($0) != nil }
            }
            if let order = withoutTime.first { return .format(DateFormat(order: order, separator: separator, hasTime: true)) }
        }
        switch fitting.count {
        case 0: return nil
        case 1: return .format(DateFormat(order: fitting[0], separator: separator, hasTime: hasTime))
        default:
            if fitting.contains(.ymd) { return .format(DateFormat(order: .ymd, separator: separator, hasTime: hasTime)) }
            return .ambiguous("dates like '\(values[0])' read both day-first and month-first, and no sampled day passes 12")
        }
    }

    /// Seconds since 1970 (UTC, or the offset written), or nil.
    func epochSeconds(_ text: String) -> Int64? {
        let characters = Array(text)
        guard characters.count >= 10 else { return nil }
        let datePart = String(characters[0..<10])
        let fields = datePart.split(separator: separator, omittingEmptySubsequences: false)
        guard fields.count == 3, fields.allSatisfy({ $0.allSatisfy(\.isASCIIDigit) }) else { return nil }
        let year: Int
        let month: Int
        let day: Int
        switch order {
        case .ymd:
            guard fields[0].count == 4, fields[1].count == 2, fields[2].count == 2 else { return nil }
            (year, month, day) = (Int(fields[0]) ?? 0, Int(fields[1]) ?? 0, Int(fields[2]) ?? 0)
        case .dmy:
            guard fields[0].count == 2, fields[1].count == 2, fields[2].count == 4 else { return nil }
            (year, month, day) = (Int(fields[2]) ?? 0, Int(fields[1]) ?? 0, Int(fields[0]) ?? 0)
        case .mdy:
            guard fields[0].count == 2, fields[1].count == 2, fields[2].count == 4 else { return nil }
            (year, month, day) = (Int(fields[2]) ?? 0, Int(fields[0]) ?? 0, Int(fields[1]) ?? 0)
        }
        guard (1...9999).contains(year), (1...12).contains(month), (1...Self.days(month, year)).contains(day) else { return nil }
        var seconds = Int64(Self.daysFromCivil(year, month, day)) * 86_400
        if characters.count == 10 { return seconds }
        guard hasTime, characters[10] == "T" || characters[10] == " " else { return nil }
        // HH:MM[:SS[.fraction]][Z|±HH:MM]
        let rest = String(characters[11...])
        var timeEnd = rest.endIndex
        var offsetSeconds: Int64 = 0
        if rest.hasSuffix("Z") {
            timeEnd = rest.index(before: rest.endIndex)
        } else if let sign = rest.lastIndex(where: { $0 == "+" || $0 == "-" }), rest.distance(from: rest.startIndex, to: sign) >= 5 {
            let offset = rest[rest.index(after: sign)...].split(separator: ":")
            guard (1...2).contains(offset.count), let hours = Int(offset[0]), hours <= 14 else { return nil }
            let minutes = offset.count == 2 ? (Int(offset[1]) ?? 99) : 0
            guard minutes < 60 else { return nil }
            offsetSeconds = Int64(hours * 3_600 + minutes * 60) * (rest[sign] == "+" ? 1 : -1)
            timeEnd = sign
        }
        let clock = rest[rest.startIndex..<timeEnd].split(separator: ":", omittingEmptySubsequences: false)
        guard (2...3).contains(clock.count), let hour = Int(clock[0]), let minute = Int(clock[1]), clock[0].count == 2, clock[1].count == 2,
              hour < 24, minute < 60 else { return nil }
        var second = 0
        if clock.count == 3 {
            let whole = clock[2].split(separator: ".", maxSplits: 1)
            guard let first = whole.first, first.count == 2, let parsed = Int(first), parsed < 61 else { return nil }
            if whole.count == 2 { guard whole[1].allSatisfy(\.isASCIIDigit) else { return nil } }
            second = parsed
        }
        seconds += Int64(hour * 3_600 + minute * 60 + second) - offsetSeconds
        return seconds
    }

    static func days(_ month: Int, _ year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func daysFromCivil(_ year: Int, _ month: Int, _ day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}
