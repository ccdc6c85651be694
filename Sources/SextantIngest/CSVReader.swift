import Foundation

/// Bounds on what one CSV record may hold. A record over a bound is skipped
/// whole (the reader keeps its place) and reported for the quarantine.
public struct CSVLimits: Sendable {
    public var maximumFieldBytes = 4 << 20
    public var maximumRecordBytes = 8 << 20
    public var maximumFields = 1_024
    public init() {}
}

/// One record, or why it cannot be used. `line` is the 1-based physical line
/// the record starts on (a quoted field may span several).
public struct CSVRecord: Sendable {
    public var fields: [String]
    public var line: Int
    /// Set when the record broke a bound or was not valid UTF-8; `fields` is then empty.
    public var problem: String?
    /// A prefix of the raw bytes, for the quarantine file.
    public var rawPrefix: String
}

/// A streaming RFC 4180 reader: quoted fields with embedded commas, doubled
/// quotes and line breaks; CRLF or LF record ends; a UTF-8 byte-order mark;
/// `;` or tab separators when the header uses them.
/// Reads the file in 256 KiB chunks, so memory is bounded by one record.
/// Lenient where writers commonly stray: a quote inside an unquoted field, or
/// text after a closing quote, is kept literally.
public struct CSVReader {
    public let path: String
    public let limits: CSVLimits
    private let fd: Int32
    private var chunk = [UInt8](repeating: 0, count: 256 << 10)
    private var chunkCount = 0
    private var position = 0
    private var atEnd = false
    private var line = 1
    public private(set) var bytesConsumed = 0
    public let sizeBytes: Int
    private var first = true
    /// The field separator, read off the header: `,` unless the header holds
    /// more `;` (spreadsheets in locales whose decimal mark is a comma) or tabs.
    public private(set) var delimiter = UInt8(ascii: ",")

    public init(path: String, limits: CSVLimits = CSVLimits()) throws {
        self.path = path
        self.limits = limits
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw IngestError.source("cannot open \(path): \(String(cString: strerror(errno)))") }
        var info = stat()
        sizeBytes = fstat(fd, &info) == 0 ? Int(info.st_size) : 0
    }

    public func close() { _ = Foundation.close(fd) }

    private mutating func fill() throws -> Bool {
        guard !atEnd else { return false }
        while true {
            let count = chunk.withUnsafeMutableBytes { raw in read(fd, raw.baseAddress, raw.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw IngestError.source("cannot read \(path): \(String(cString: strerror(errno)))")
            }
            if count == 0 { atEnd = true; return false }
            chunkCount = count
            position = 0
            return true
        }
    }

    /// The next byte, or nil at the end of the file.
    @inline(__always)
    private mutating func nextByte() throws -> UInt8? {
        if position == chunkCount, !(try fill()) { return nil }
        let byte = chunk[position]
        position += 1
        bytesConsumed += 1
        return byte
    }

    @inline(__always)
    private mutating func peekByte() throws -> UInt8? {
        if position == chunkCount, !(try fill()) { return nil }
        return chunk[position]
    }

    /// The separator the header's first line (as far as the first chunk holds
    /// it) uses most outside quotes, commas winning ties.
    private func sniffDelimiter() -> UInt8 {
        var counts: [UInt8: Int] = [UInt8(ascii: ","): 0, UInt8(ascii: ";"): 0, UInt8(ascii: "\t"): 0]
        var inQuotes = false
        var index = position
        while index < chunkCount {
            let byte = chunk[index]
            if byte == UInt8(ascii: "\"") { inQuotes.toggle() }
            if !inQuotes {
                if byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") { break }
                if counts[byte] != nil { counts[byte, default: 0] += 1 }
            }
            index += 1
        }
        let comma = counts[UInt8(ascii: ",")] ?? 0
        let best = counts.max { $0.value < $1.value || ($0.value == $1.value && $0.key == UInt8(ascii: ",")) }
        guard let best, best.value > comma else { return UInt8(ascii: ",") }
        return best.key
    }

    /// The next record; nil at the end of the file. Blank lines are skipped.
    public mutating func next() throws -> CSVRecord? {
        if first {
            first = false
            if try peekByte() == 0xEF {
                // Only a full BOM is dropped; anything else starting with 0xEF is data.
                let saved = (position, bytesConsumed)
                _ = try nextByte()
                if try peekByte() == 0xBB, position + 1 < chunkCount, chunk[position + 1] == 0xBF {
                    _ = try nextByte()
                    _ = try nextByte()
                } else {
                    (position, bytesConsumed) = saved
                }
            }
            if try peekByte() != nil { delimiter = sniffDelimiter() }
        }
        while true {
            guard let record = try readRecord() else { return nil }
            if record.problem == nil && record.fields.count == 1 && record.fields[0].isEmpty { continue }  // blank line
            return record
        }
    }

    private mutating func readRecord() throws -> CSVRecord? {
        guard try peekByte() != nil else { return nil }
        let startLine = line
        var fields: [String] = []
        var field: [UInt8] = []
        var raw: [UInt8] = []
        var recordBytes = 0
        var problem: String? = nil
        var inQuotes = false
        var quotedFieldStartLine = 0
        var fieldWasQuoted = false

        func finishField(_ fields: inout [String], _ field: inout [UInt8], _ problem: inout String?, limits: CSVLimits) {
            defer { field.removeAll(keepingCapacity: true) }
            guard problem == nil else { return }
            guard fields.count < limits.maximumFields else {
                problem = "more than \(limits.maximumFields) fields"
                return
            }
            guard let text = String(validating: field, as: UTF8.self) else {
                problem = "field \(fields.count + 1) is not valid UTF-8"
                return
            }
            fields.append(text)
        }

        while let byte = try nextByte() {
            recordBytes += 1
            if raw.count < 512 { raw.append(byte) }
            if byte == UInt8(ascii: "\n") { line += 1 }
            if problem == nil && recordBytes > limits.maximumRecordBytes { problem = "record exceeds \(limits.maximumRecordBytes) bytes" }
            if inQuotes {
                if byte == UInt8(ascii: "\"") {
                    if try peekByte() == UInt8(ascii: "\"") {
                        _ = try nextByte()
                        recordBytes += 1
                        field.append(byte)
                    } else {
                        inQuotes = false
                    }
                } else {
                    field.append(byte)
                }
            } else {
                if byte == delimiter {
                    finishField(&fields, &field, &problem, limits: limits)
                    fieldWasQuoted = false
                    continue
                }
                switch byte {
                case UInt8(ascii: "\r"):
                    if try peekByte() == UInt8(ascii: "\n") {
                        _ = try nextByte()
                        line += 1
                    } else {
                        line += 1  // a lone CR ends the record too
                    }
                    finishField(&fields, &field, &problem, limits: limits)
                    return CSVRecord(fields: problem == nil ? fields : [], line: startLine, problem: problem, rawPrefix: Self.text(raw))
                case UInt8(ascii: "\n"):
                    finishField(&fields, &field, &problem, limits: limits)
                    return CSVRecord(fields: problem == nil ? fields : [], line: startLine, problem: problem, rawPrefix: Self.text(raw))
                case UInt8(ascii: "\"") where field.isEmpty && !fieldWasQuoted:
                    inQuotes = true
                    fieldWasQuoted = true
                    quotedFieldStartLine = line
                    continue
                default:
                    field.append(byte)
                }
            }
            if problem == nil && field.count > limits.maximumFieldBytes {
                problem = "field \(fields.count + 1) exceeds \(limits.maximumFieldBytes) bytes"
            }
            if problem != nil { field.removeAll(keepingCapacity: true) }
        }
        // The more useful reason wins over a bound the runaway field also broke.
        if inQuotes { problem = "quoted field opened on line \(quotedFieldStartLine) is never closed" }
        finishField(&fields, &field, &problem, limits: limits)
        return CSVRecord(fields: problem == nil ? fields : [], line: startLine, problem: problem, rawPrefix: Self.text(raw))
    }

    private static func text(_ raw: [UInt8]) -> String { String(decoding: raw, as: UTF8.self) }
}
