/// Date and date-time layouts a feed writes, named as a mapping names them.
/// Shared by the ingestion worker (which stores dates as epoch seconds) and
/// the API (which reads a filter's date literals in the same layout).
public struct DateFormat: Equatable, Sendable {
    public enum Order: String, Sendable { case ymd, dmy, mdy }
    public var order: Order
    public var separator: Character
    public var hasTime: Bool

    /// The mapping's spelling: `YYYY-MM-DD`, `DD/MM/YYYY`, `MM/DD/YYYY`, `DD.MM.YYYY`…, with ` HH:MM[:SS]` or ISO 8601's `T…`.
    public var name: String {
        let sep = String(separator)
        let date: String
        switch order {
        case .ymd: date = "YYYY\(sep)MM\(sep)DD"
        case .dmy: date = "DD\(sep)MM\(sep)YYYY"
        case .mdy: date = "MM\(sep)DD\(sep)YYYY"
        }
        return hasTime ? date + " HH:MM:SS" : date
    }

    public init(order: Order, separator: Character, hasTime: Bool) {
        self.order = order
        self.separator = separator
        self.hasTime = hasTime
    }

    public init?(name: String) {
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

    public enum Inference: Equatable {
        case format(DateFormat)
        case ambiguous(String)
    }

    /// The layout every sampled value parses under. Day-first and month-first
    /// are told apart by a value whose first or second part passes 12; a
    /// sample with neither is ambiguous and refused, not guessed.
    public static func infer(_ values: [String]) -> Inference? {
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
    public func epochSeconds(_ text: String) -> Int64? {
        let characters = Array(text)
        guard characters.count >= 10 else { return nil }
        let datePart = String(characters[0..<10])
        let fields = datePart.split(separator: separator, omittingEmptySubsequences: false)
        guard fields.count == 3, fields.allSatisfy({ $0.allSatisfy(\.isDigitASCII) }) else { return nil }
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
            if whole.count == 2 { guard whole[1].allSatisfy(\.isDigitASCII) else { return nil } }
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

extension Character {
    var isDigitASCII: Bool { isASCII && isNumber }
}

extension WhereFilter {
    /// The filter with date literals on date fields read as the seconds the
    /// fields hold: `{"deadline": {"$gte": "15/01/2027"}}` on a field ingested
    /// as DD/MM/YYYY becomes `{"deadline": {"$gte": 1799971200}}`. A literal
    /// is read in the field's own layout, else as ISO 8601; one that reads as
    /// neither is left as text (and the typed-filter check names the field).
    public func readingDates(_ formats: [String: DateFormat]) -> WhereFilter {
        guard !formats.isEmpty else { return self }
        func converted(_ key: String, _ value: MetadataValue) -> MetadataValue {
            guard case .string(let text) = value, let format = formats[key] else { return value }
            let iso = DateFormat(order: .ymd, separator: "-", hasTime: true)
            guard let seconds = format.epochSeconds(text) ?? iso.epochSeconds(text) else { return value }
            return .int(seconds)
        }
        switch self {
        case .and(let children): return .and(children.map { $0.readingDates(formats) })
        case .or(let children): return .or(children.map { $0.readingDates(formats) })
        case .compare(let key, let op, let value): return .compare(key: key, op: op, value: converted(key, value))
        case .membership(let key, let negated, let values):
            return .membership(key: key, negated: negated, values: values.map { converted(key, $0) })
        }
    }
}

/// Where a collection says which of its fields are dates, and in what
/// layout: collection metadata `sextant:dates`, one `field=LAYOUT` per line
/// (written by the ingestion worker for the dates it stores).
public enum DateFields {
    public static let metadataKey = "sextant:dates"

    public static func formats(in metadata: Metadata) -> [String: DateFormat] {
        guard case .string(let text)? = metadata[metadataKey] else { return [:] }
        var formats: [String: DateFormat] = [:]
        for line in text.split(separator: "\n") {
            // The layout has no '=', a field might: split at the last one.
            guard let equals = line.lastIndex(of: "="), let format = DateFormat(name: String(line[line.index(after: equals)...])) else {
                continue
            }
            formats[String(line[..<equals])] = format
        }
        return formats
    }

    /// The metadata value for `formats` (fields holding a line break are left out).
    public static func encode(_ formats: [String: DateFormat]) -> String {
        formats.keys.sorted().filter { !$0.contains("\n") }.compactMap { key in formats[key].map { "\(key)=\($0.name)" } }
            .joined(separator: "\n")
    }
}
