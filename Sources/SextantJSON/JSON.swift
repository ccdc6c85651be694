#if canImport(Glibc)
import Glibc
#endif

/// A JSON value that keeps what Foundation's parsers blur: whether a number was
/// written as an integer (`3`) or a float (`3.0`). ChromaDB's filters and
/// metadata depend on that distinction.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    /// A float32 (a stored vector component, a distance): written at float32
    /// precision ("0.1", not "0.10000000149011612"), while every double is
    /// written exactly. The parser never makes one; it reads numbers as doubles.
    case float(Float)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public subscript(key: String) -> JSONValue? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    public var isNull: Bool { self == .null }

    public var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    public var intValue: Int64? {
        switch self {
        case .int(let number): return number
        case .double(let number) where number == number.rounded() && abs(number) < 9e15: return Int64(number)
        default: return nil
        }
    }

    public var doubleValue: Double? {
        switch self {
        case .int(let number): return Double(number)
        case .double(let number): return number
        case .float(let number): return Double(number)
        default: return nil
        }
    }

    public var boolValue: Bool? {
        if case .bool(let flag) = self { return flag }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let items) = self { return items }
        return nil
    }

    public var objectValue: [String: JSONValue]? {
        if case .object(let object) = self { return object }
        return nil
    }

    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .int: return "integer"
        case .double, .float: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }
}

public struct JSONError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public let offset: Int
    public var description: String { "malformed JSON at byte \(offset): \(message)" }
}

public enum JSON {
    /// Nesting deeper than this is refused (no recursion bombs).
    public static let maximumDepth = 64

    public static func parse(_ text: String) throws(JSONError) -> JSONValue {
        try parse(Array(text.utf8))
    }

    public static func parse(_ bytes: [UInt8]) throws(JSONError) -> JSONValue {
        var parser = Parser(bytes: bytes)
        parser.skipWhitespace()
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw parser.error("unexpected bytes after the value") }
        return value
    }

    /// Compact JSON text. Non-finite numbers (not representable in JSON) become null.
    public static func serialize(_ value: JSONValue) -> String {
        var out = [UInt8]()
        out.reserveCapacity(256)
        write(value, &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Indented JSON text for files people read and edit (keys sorted, two spaces a level).
    public static func serialize(_ value: JSONValue, pretty: Bool) -> String {
        guard pretty else { return serialize(value) }
        var out = [UInt8]()
        writePretty(value, &out, indent: 0)
        out.append(UInt8(ascii: "\n"))
        return String(decoding: out, as: UTF8.self)
    }

    static func writePretty(_ value: JSONValue, _ out: inout [UInt8], indent: Int) {
        func newline(_ level: Int) {
            out.append(UInt8(ascii: "\n"))
            out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: level * 2))
        }
        switch value {
        case .array(let items) where !items.isEmpty:
            out.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                newline(indent + 1)
                writePretty(item, &out, indent: indent + 1)
            }
            newline(indent)
            out.append(UInt8(ascii: "]"))
        case .object(let object) where !object.isEmpty:
            out.append(UInt8(ascii: "{"))
            for (index, key) in object.keys.sorted().enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                newline(indent + 1)
                writeString(key, &out)
                out.append(contentsOf: ": ".utf8)
                if let item = object[key] { writePretty(item, &out, indent: indent + 1) }
            }
            newline(indent)
            out.append(UInt8(ascii: "}"))
        default: write(value, &out)
        }
    }

    public static func serializeBytes(_ value: JSONValue) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(256)
        write(value, &out)
        return out
    }

    static func write(_ value: JSONValue, _ out: inout [UInt8]) {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let flag): out.append(contentsOf: (flag ? "true" : "false").utf8)
        case .int(let number): out.append(contentsOf: String(number).utf8)
        case .double(let number):
            writeNumber(number, &out)
        case .float(let number):
            writeNumber(number, &out)
        case .string(let text): writeString(text, &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                write(item, &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let object):
            out.append(UInt8(ascii: "{"))
            for (index, key) in object.keys.sorted().enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                writeString(key, &out)
                out.append(UInt8(ascii: ":"))
                if let item = object[key] { write(item, &out) }
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// Shortest text that reads back to the same value. A value that is exactly a
    /// float32 (vectors, distances) is written in float32's shortest form: 9
    /// digits instead of 17, half the bytes to send and parse. Always has a '.'
    /// or an exponent, so it reads back as a float, not an integer.
    /// The shortest text that parses back to exactly `number` in its own precision.
    static func writeNumber<Number: BinaryFloatingPoint & CustomStringConvertible>(_ number: Number, _ out: inout [UInt8]) {
        guard number.isFinite else {
            out.append(contentsOf: "null".utf8)
            return
        }
        let text = number.description
        var isFloatSyntax = false
        for byte in text.utf8 {
            out.append(byte)
            if byte == UInt8(ascii: ".") || byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") { isFloatSyntax = true }
        }
        if !isFloatSyntax { out.append(contentsOf: ".0".utf8) }
    }

    static func writeString(_ text: String, _ out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: "\\\"".utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: "\\\\".utf8)
            case 0x0A: out.append(contentsOf: "\\n".utf8)
            case 0x0D: out.append(contentsOf: "\\r".utf8)
            case 0x09: out.append(contentsOf: "\\t".utf8)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: "\\u00".utf8)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0xF)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

struct Parser {
    let bytes: [UInt8]
    var index = 0

    func error(_ message: String) -> JSONError { JSONError(message: message, offset: index) }

    mutating func skipWhitespace() {
        while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x0A || bytes[index] == 0x0D || bytes[index] == 0x09 {
            index += 1
        }
    }

    mutating func value(depth: Int) throws(JSONError) -> JSONValue {
        guard depth < JSON.maximumDepth else { throw error("nested deeper than \(JSON.maximumDepth)") }
        guard index < bytes.count else { throw error("unexpected end of input") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw error("unexpected character '\(Character(Unicode.Scalar(bytes[index])))'")
        }
    }

    mutating func literal(_ word: String, _ result: JSONValue) throws(JSONError) -> JSONValue {
        let expected = Array(word.utf8)
        guard index + expected.count <= bytes.count, Array(bytes[index..<(index + expected.count)]) == expected else {
            throw error("expected '\(word)'")
        }
        index += expected.count
        return result
    }

    mutating func object(depth: Int) throws(JSONError) -> JSONValue {
        index += 1
        var result: [String: JSONValue] = [:]
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return .object(result)
        }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw error("expected a key") }
            let key = try string()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error("expected ':'") }
            index += 1
            skipWhitespace()
            result[key] = try value(depth: depth + 1)
            skipWhitespace()
            guard index < bytes.count else { throw error("unterminated object") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            guard bytes[index] == UInt8(ascii: "}") else { throw error("expected ',' or '}'") }
            index += 1
            return .object(result)
        }
    }

    mutating func array(depth: Int) throws(JSONError) -> JSONValue {
        index += 1
        var result: [JSONValue] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            return .array(result)
        }
        while true {
            skipWhitespace()
            result.append(try value(depth: depth + 1))
            skipWhitespace()
            guard index < bytes.count else { throw error("unterminated array") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            guard bytes[index] == UInt8(ascii: "]") else { throw error("expected ',' or ']'") }
            index += 1
            return .array(result)
        }
    }

    mutating func string() throws(JSONError) -> String {
        index += 1
        var out = [UInt8]()
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                guard let text = String(validating: out, as: UTF8.self) else { throw error("string is not valid UTF-8") }
                return text
            case UInt8(ascii: "\\"):
                guard index < bytes.count else { throw error("unterminated escape") }
                let escaped = bytes[index]
                index += 1
                switch escaped {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {  // a surrogate pair
                        guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                            throw error("lone high surrogate")
                        }
                        index += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw error("invalid low surrogate") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        throw error("lone low surrogate")
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw error("invalid code point") }
                    out.append(contentsOf: String(Character(unicode)).utf8)
                default: throw error("invalid escape")
                }
            case 0..<0x20: throw error("control character in string")
            default: out.append(byte)
            }
        }
        throw error("unterminated string")
    }

    static let powersOfTen: [Double] = (0...22).map { exponent in (0..<exponent).reduce(1.0) { value, _ in value * 10 } }

    /// Clinger's fast path: a decimal whose digits fit 2^53 and whose power of
    /// ten is at most 22 is one exact IEEE multiply or divide away, so the
    /// result is correctly rounded without strtod. Nil for everything else.
    static func fastDouble(_ bytes: [UInt8], _ start: Int, _ end: Int) -> Double? {
        var position = start
        let negative = bytes[position] == UInt8(ascii: "-")
        if negative { position += 1 }
        var mantissa: UInt64 = 0
        var digits = 0
        var exponent = 0
        var seenPoint = false
        while position < end {
            let byte = bytes[position]
            if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
                if mantissa == 0 && byte == UInt8(ascii: "0") {
                    if seenPoint { exponent -= 1 }
                } else {
                    digits += 1
                    guard digits <= 15 else { return nil }
                    mantissa = mantissa * 10 + UInt64(byte - UInt8(ascii: "0"))
                    if seenPoint { exponent -= 1 }
                }
            } else if byte == UInt8(ascii: ".") && !seenPoint {
                seenPoint = true
            } else if byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") {
                position += 1
                var exponentNegative = false
                if position < end && (bytes[position] == UInt8(ascii: "-") || bytes[position] == UInt8(ascii: "+")) {
                    exponentNegative = bytes[position] == UInt8(ascii: "-")
                    position += 1
                }
                var value = 0
                guard position < end else { return nil }
                while position < end {
                    let digit = bytes[position]
                    guard digit >= UInt8(ascii: "0") && digit <= UInt8(ascii: "9"), value < 1_000 else { return nil }
                    value = value * 10 + Int(digit - UInt8(ascii: "0"))
                    position += 1
                }
                exponent += exponentNegative ? -value : value
                break
            } else {
                return nil
            }
            position += 1
        }
        guard abs(exponent) <= 22 else { return mantissa == 0 ? (negative ? -0.0 : 0.0) : nil }
        let magnitude = exponent >= 0 ? Double(mantissa) * powersOfTen[exponent] : Double(mantissa) / powersOfTen[-exponent]
        return negative ? -magnitude : magnitude
    }

    mutating func hex4() throws(JSONError) -> UInt32 {
        guard index + 4 <= bytes.count else { throw error("short \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            index += 1
            let digit: UInt32
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
            default: throw error("bad hex digit")
            }
            value = value << 4 | digit
        }
        return value
    }

    /// The common shape, `-?digits(.digits)?` with at most 15 significant digits
    /// (every number in an embedding a client sends), in one pass with no
    /// overflow or bounds checks; nil hands anything else to the general path
    /// below, which gives the same value for this shape (Clinger's exact case).
    /// Returns the value and the offset after it.
    static func plainDecimal(_ bytes: [UInt8], _ start: Int) -> (JSONValue, Int)? {
        bytes.withUnsafeBufferPointer { buffer -> (JSONValue, Int)? in
            let count = buffer.count
            var position = start
            let negative = buffer[position] == UInt8(ascii: "-")
            if negative { position &+= 1 }
            var mantissa: UInt64 = 0
            var significant = 0
            /// Folds a run of digits into the mantissa; returns how many there were.
            func digitRun() -> Int {
                let first = position
                while position < count {
                    let digit = buffer[position] &- UInt8(ascii: "0")
                    guard digit < 10 else { break }
                    mantissa = mantissa &* 10 &+ UInt64(digit)
                    if mantissa != 0 { significant &+= 1 }
                    position &+= 1
                }
                return position &- first
            }
            let integerDigits = digitRun()
            guard integerDigits > 0 else { return nil }
            var fractionDigits = 0
            if position < count && buffer[position] == UInt8(ascii: ".") {
                position &+= 1
                fractionDigits = digitRun()
                guard fractionDigits > 0 else { return nil }
            }
            if position < count {
                let next = buffer[position]
                if next == UInt8(ascii: "e") || next == UInt8(ascii: "E") || next == UInt8(ascii: ".")
                    || next == UInt8(ascii: "+") || next == UInt8(ascii: "-") { return nil }
            }
            if fractionDigits == 0 {
                guard integerDigits <= 18 else { return nil }
                let value = Int64(mantissa)
                return (.int(negative ? -value : value), position)
            }
            guard significant <= 15, fractionDigits <= 22 else { return nil }
            let magnitude = Double(mantissa) / powersOfTen[fractionDigits]
            return (.double(negative ? -magnitude : magnitude), position)
        }
    }

    mutating func number() throws(JSONError) -> JSONValue {
        let start = index
        if let (value, end) = Self.plainDecimal(bytes, start) {
            index = end
            return value
        }
        var isFloat = false
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) else {
            throw error("expected a digit")
        }
        while index < bytes.count {
            let byte = bytes[index]
            if (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) {
                index += 1
            } else if byte == UInt8(ascii: ".") || byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E")
                || ((byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-")) && isFloat)
            {
                isFloat = true
                index += 1
            } else {
                break
            }
        }
        let length = index - start
        if !isFloat, length <= 18 {  // fits Int64 without overflow checks per digit
            var value: Int64 = 0
            var position = start
            let negative = bytes[position] == UInt8(ascii: "-")
            if negative { position += 1 }
            while position < index {
                value = value * 10 + Int64(bytes[position] - UInt8(ascii: "0"))
                position += 1
            }
            return .int(negative ? -value : value)
        }
        // 19-digit integers that still fit Int64 stay exact (strtod would round them).
        if !isFloat, let exact = Int64(String(decoding: bytes[start..<index], as: UTF8.self)) { return .int(exact) }
        if let exact = Self.fastDouble(bytes, start, index) { return .double(exact) }
        // strtod on a small stack buffer: no String allocated per number.
        guard length < 64 else { throw JSONError(message: "number too long", offset: start) }
        let parsed = withUnsafeTemporaryAllocation(of: CChar.self, capacity: 64) { buffer -> Double? in
            for offset in 0..<length { buffer[offset] = CChar(bitPattern: bytes[start + offset]) }
            buffer[length] = 0
            guard let base = buffer.baseAddress else { return nil }
            var end: UnsafeMutablePointer<CChar>? = nil
            let value = strtod(base, &end)
            guard let end, end - base == length else { return nil }
            return value
        }
        if !isFloat, let parsed, let integer = Int64(exactly: parsed) { return .int(integer) }
        guard let parsed, parsed.isFinite else {
            throw JSONError(message: "invalid number '\(String(decoding: bytes[start..<index], as: UTF8.self))'", offset: start)
        }
        return .double(parsed)
    }
}
