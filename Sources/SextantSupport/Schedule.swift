import Foundation

/// When runs happen: once, every fixed interval, or on a cron schedule.
public enum Schedule: Sendable, Equatable, CustomStringConvertible {
    case once
    case interval(seconds: Double)
    case cron(CronExpression)

    /// The next run strictly after `date` (nil for `.once`).
    public func next(after date: Date) -> Date? {
        switch self {
        case .once: return nil
        case .interval(let seconds): return date.addingTimeInterval(seconds)
        case .cron(let expression): return expression.next(after: date)
        }
    }

    public var description: String {
        switch self {
        case .once: return "once"
        case .interval(let seconds): return "every \(Int(seconds)) s"
        case .cron(let expression): return "cron '\(expression.text)'"
        }
    }

    /// "6h", "30m", "90s", "1d", or a plain number of seconds.
    public static func parseDuration(_ text: String) throws -> Double {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3_600, "d": 86_400]
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let unit = trimmed.last, let factor = units[unit], let value = Double(trimmed.dropLast()), value > 0 {
            return value * factor
        }
        if let value = Double(trimmed), value > 0 { return value }
        throw ScheduleError("invalid duration '\(text)': use e.g. 30s, 15m, 6h, 1d")
    }
}

/// A five-field cron expression (minute hour day-of-month month day-of-week)
/// with `*`, lists, ranges, steps, month and weekday names, and the
/// @hourly/@daily/@weekly/@monthly/@yearly shorthands, in the machine's local
/// time. As in Vixie cron, when both day fields are restricted a day matching
/// either runs.
public struct CronExpression: Sendable, Equatable {
    public let text: String
    let minutes: Set<Int>
    let hours: Set<Int>
    let days: Set<Int>
    let months: Set<Int>
    let weekdays: Set<Int>
    let daysRestricted: Bool
    let weekdaysRestricted: Bool

    public init(_ text: String) throws {
        self.text = text
        let aliases = ["@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
                       "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"]
        let expanded = aliases[text.trimmingCharacters(in: .whitespaces).lowercased()] ?? text
        let fields = expanded.split(whereSeparator: \.isWhitespace).map { String($0).lowercased() }
        guard fields.count == 5 else { throw ScheduleError("cron '\(text)': expected 5 fields (minute hour day month weekday)") }
        let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        let dayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
        minutes = try Self.field(fields[0], 0...59, names: [], text)
        hours = try Self.field(fields[1], 0...23, names: [], text)
        days = try Self.field(fields[2], 1...31, names: [], text)
        months = try Self.field(fields[3], 1...12, names: monthNames, text, nameOffset: 1)
        weekdays = Set(try Self.field(fields[4], 0...7, names: dayNames, text).map { $0 % 7 })
        daysRestricted = fields[2] != "*" && fields[2] != "?"
        weekdaysRestricted = fields[4] != "*" && fields[4] != "?"
    }

    private static func field(_ field: String, _ range: ClosedRange<Int>, names: [String], _ text: String,
                              nameOffset: Int = 0) throws -> Set<Int> {
        func value(_ token: Substring) throws -> Int {
            if let number = Int(token), range.contains(number) { return number }
            if let index = names.firstIndex(of: String(token)) { return index + nameOffset }
            throw ScheduleError("cron '\(text)': '\(token)' is not in \(range.lowerBound)-\(range.upperBound)")
        }
        var result = Set<Int>()
        for part in field.split(separator: ",") {
            let pieces = part.split(separator: "/", maxSplits: 1)
            let step = pieces.count == 2 ? Int(pieces[1]) ?? 0 : 1
            guard step >= 1 else { throw ScheduleError("cron '\(text)': bad step in '\(part)'") }
            let base = pieces[0]
            let lower: Int
            let upper: Int
            if base == "*" || base == "?" {
                (lower, upper) = (range.lowerBound, range.upperBound)
            } else if let dash = base.firstIndex(of: "-") {
                (lower, upper) = (try value(base[..<dash]), try value(base[base.index(after: dash)...]))
                guard lower <= upper else { throw ScheduleError("cron '\(text)': empty range '\(base)'") }
            } else {
                lower = try value(base)
                upper = pieces.count == 2 ? range.upperBound : lower
            }
            result.formUnion(stride(from: lower, through: upper, by: step))
        }
        guard !result.isEmpty else { throw ScheduleError("cron '\(text)': empty field '\(field)'") }
        return result
    }

    /// The first whole minute after `date` that matches; nil if none within about four years.
    public func next(after date: Date) -> Date? {
        var seconds = time_t((date.timeIntervalSince1970 / 60).rounded(.down) * 60 + 60)
        for _ in 0..<(4 * 366 * 24 * 60) {
            var parts = tm()
            localtime_r(&seconds, &parts)
            let month = Int(parts.tm_mon) + 1
            if !months.contains(month) {
                // Jump to the first day of the next month.
                parts.tm_mon += 1
                parts.tm_mday = 1
                parts.tm_hour = 0
                parts.tm_min = 0
                parts.tm_sec = 0
                parts.tm_isdst = -1
                seconds = mktime(&parts)
                continue
            }
            let dayMatches = daysRestricted && weekdaysRestricted
                ? days.contains(Int(parts.tm_mday)) || weekdays.contains(Int(parts.tm_wday))
                : days.contains(Int(parts.tm_mday)) && weekdays.contains(Int(parts.tm_wday))
            if !dayMatches {
                parts.tm_mday += 1
                parts.tm_hour = 0
                parts.tm_min = 0
                parts.tm_sec = 0
                parts.tm_isdst = -1
                seconds = mktime(&parts)
                continue
            }
            if !hours.contains(Int(parts.tm_hour)) {
                parts.tm_hour += 1
                parts.tm_min = 0
                parts.tm_sec = 0
                parts.tm_isdst = -1
                seconds = mktime(&parts)
                continue
            }
            if minutes.contains(Int(parts.tm_min)) { return Date(timeIntervalSince1970: Double(seconds)) }
            seconds += 60
        }
        return nil
    }
}

/// A schedule or duration that does not parse; the message says what was expected.
public struct ScheduleError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
