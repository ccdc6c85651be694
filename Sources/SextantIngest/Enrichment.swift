import Foundation
import SextantClient

/// A pipeline step between parsing and embedding. Steps never drop a row: a
/// step that cannot do its work for a row leaves it as it was and counts it.
public protocol Enricher: Sendable {
    var name: String { get }
    /// Returns the rows (same count, same order) and how many it failed to enrich.
    func enrich(_ rows: [IngestRow]) async -> (rows: [IngestRow], failures: Int)
}

/// Cleanup: control characters out (line breaks stay), runs of spaces and
/// tabs inside a line collapsed, trailing spaces dropped, a line's indentation
/// kept (verbatim lists and code), at most one blank line in a row, and the
/// document capped at the mapping's length (cut at a word boundary).
public struct CleanupEnricher: Enricher {
    public let name = "cleanup"
    public let maximumCharacters: Int
    public init(maximumCharacters: Int) { self.maximumCharacters = maximumCharacters }

    public func enrich(_ rows: [IngestRow]) async -> (rows: [IngestRow], failures: Int) {
        (rows.map { row in
            var row = row
            row.document = clean(row.document)
            return row
        }, 0)
    }

    public func clean(_ text: String) -> String {
        // One pass over UTF-8 bytes into a byte buffer. ASCII (nearly all of it)
        // never consults Unicode property tables or appends scalar by scalar,
        // which together took most of the worker's CPU in a profile.
        var output: [UInt8] = []
        output.reserveCapacity(text.utf8.count)
        var line: [UInt8] = []
        var lineHasText = false
        var pendingSpace = false
        var indentation = 0
        var blankLines = 0
        var wroteLine = false

        func endLine() {
            if lineHasText {
                if wroteLine {
                    output.append(0x0A)
                    if blankLines > 0 { output.append(0x0A) }
                }
                output.append(contentsOf: line)
                wroteLine = true
                blankLines = 0
            } else if wroteLine {
                blankLines += 1
            }
            line.removeAll(keepingCapacity: true)
            lineHasText = false
            pendingSpace = false
            indentation = 0
        }

        var previousWasCR = false
        var utf8 = text.utf8.makeIterator()
        while let byte = utf8.next() {
            let value: UInt32
            var scalar: Unicode.Scalar?
            if byte < 0x80 {
                value = UInt32(byte)
            } else {
                // String's bytes are valid UTF-8: gather the rest of this scalar.
                let length = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : 2
                var decoded = UInt32(byte) & (length == 4 ? 0x07 : length == 3 ? 0x0F : 0x1F)
                for _ in 1..<length { decoded = decoded << 6 | UInt32(utf8.next() ?? 0x80) & 0x3F }
                guard let valid = Unicode.Scalar(decoded) else { continue }
                scalar = valid
                value = decoded
            }
            if value == 0x0A || value == 0x0D {
                if value == 0x0A && previousWasCR { previousWasCR = false; continue }
                previousWasCR = value == 0x0D
                endLine()
                continue
            }
            previousWasCR = false
            let isSpace = value == 0x20 || value == 0x09 || value == 0xA0
            if isSpace {
                if !lineHasText { indentation = min(indentation + 1, 16) } else { pendingSpace = true }
                continue
            }
            if value < 0x20 || value == 0x7F { continue }
            if let scalar {
                let category = scalar.properties.generalCategory
                if category == .control || (category == .format && value != 0x200D) { continue }
            }
            if !lineHasText {
                for _ in 0..<indentation { line.append(0x20) }
                lineHasText = true
            } else if pendingSpace {
                line.append(0x20)
            }
            pendingSpace = false
            if let scalar { line.append(contentsOf: scalar.utf8) } else { line.append(byte) }
        }
        endLine()
        var cleaned = String(decoding: output, as: UTF8.self)
        if output.count > maximumCharacters && cleaned.unicodeScalars.count > maximumCharacters && cleaned.count > maximumCharacters {
            var cut = cleaned.prefix(maximumCharacters)
            if let space = cut.lastIndex(where: { $0 == " " || $0 == "\n" }), cut.distance(from: cut.startIndex, to: space) > maximumCharacters / 2 {
                cut = cut[..<space]
            }
            cleaned = String(cut)
        }
        return cleaned
    }
}

/// Derived metadata: the `count` most frequent content words of the document
/// (lower-cased, stop words and words under three letters left out), as a
/// comma-separated string under `keywords`, so they can be filtered with
/// `$contains` on documents or shown next to results.
public struct KeywordEnricher: Enricher {
    public let name = "keywords"
    public let count: Int
    public init(count: Int) { self.count = count }

    static let stopWords: Set<String> = [
        "the", "and", "for", "are", "but", "not", "you", "all", "any", "can", "her", "was", "one", "our", "out", "has", "have",
        "had", "his", "how", "its", "may", "new", "now", "see", "two", "way", "who", "did", "get", "use", "used", "using",
        "this", "that", "with", "from", "they", "will", "would", "there", "their", "what", "about", "which", "when", "make",
        "like", "than", "then", "them", "these", "some", "such", "into", "also", "other", "more", "most", "only", "over",
        "each", "both", "very", "your", "been", "being", "were", "does", "should", "could", "provides", "package", "contains",
        "files", "file", "support", "includes", "based", "allows", "can't", "it's", "etc", "via", "well", "many", "much",
    ]

    public func enrich(_ rows: [IngestRow]) async -> (rows: [IngestRow], failures: Int) {
        (rows.map { row in
            var row = row
            let words = keywords(row.document)
            if !words.isEmpty { row.metadata["keywords"] = .string(words.joined(separator: ", ")) }
            return row
        }, 0)
    }

    public func keywords(_ text: String) -> [String] {
        // Words are collected as scalars; an all-ASCII word (nearly all) is
        // lower-cased byte by byte, others through String.lowercased().
        var firstSeen: [String: Int] = [:]
        var tallies: [(word: String, count: Int)] = []
        var word: [Unicode.Scalar] = []
        word.reserveCapacity(64)
        var letters = 0
        var ascii = true
        func finish() {
            defer {
                word.removeAll(keepingCapacity: true)
                letters = 0
                ascii = true
            }
            var start = 0
            var end = word.count
            while end > start && word[end - 1] == "-" { end -= 1 }
            while start < end && word[start] == "-" { start += 1 }
            let length = end - start
            guard length >= 3, length <= 40, letters > 0 else { return }
            let candidate: String
            if ascii {
                candidate = String(unsafeUninitializedCapacity: length) { buffer in
                    for index in 0..<length {
                        var byte = UInt8(truncatingIfNeeded: word[start + index].value)
                        if byte >= 0x41 && byte <= 0x5A { byte += 0x20 }
                        buffer[index] = byte
                    }
                    return length
                }
            } else {
                var view = String.UnicodeScalarView()
                view.append(contentsOf: word[start..<end])
                candidate = String(view).lowercased()
            }
            guard !Self.stopWords.contains(candidate) else { return }
            if let index = firstSeen[candidate] {
                tallies[index].count += 1
            } else {
                firstSeen[candidate] = tallies.count
                tallies.append((candidate, 1))
            }
        }
        for scalar in text.unicodeScalars {
            let value = scalar.value
            let isLetter: Bool
            let isDigit: Bool
            if value < 0x80 {
                isLetter = (value >= 0x41 && value <= 0x5A) || (value >= 0x61 && value <= 0x7A)
                isDigit = value >= 0x30 && value <= 0x39
            } else {
                isLetter = scalar.properties.isAlphabetic
                isDigit = scalar.properties.numericType != nil
            }
            if isLetter || isDigit || value == 0x2D {
                word.append(scalar)
                if isLetter { letters += 1 }
                if value >= 0x80 { ascii = false }
            } else if !word.isEmpty {
                finish()
            }
        }
        if !word.isEmpty { finish() }
        // Most frequent first; ties in order of first appearance.
        let ranked = tallies.indices.sorted { a, b in
            tallies[a].count != tallies[b].count ? tallies[a].count > tallies[b].count : a < b
        }
        return ranked.prefix(count).map { tallies[$0].word }
    }
}
