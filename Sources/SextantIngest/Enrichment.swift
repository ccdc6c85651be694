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
        // One pass over scalars; ASCII (nearly all of it) never consults
        // Unicode property tables, which dominated a profile of the worker.
        var output = String.UnicodeScalarView()
        var line = String.UnicodeScalarView()
        var lineHasText = false
        var pendingSpace = false
        var indentation = 0
        var blankLines = 0
        var wroteLine = false

        func endLine() {
            if lineHasText {
                if wroteLine { output.append(contentsOf: String(repeating: "\n", count: min(blankLines, 1) + 1).unicodeScalars) }
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
        for scalar in text.unicodeScalars {
            let value = scalar.value
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
            if value >= 0x80 {
                let category = scalar.properties.generalCategory
                if category == .control || (category == .format && value != 0x200D) { continue }
            }
            if !lineHasText {
                for _ in 0..<indentation { line.append(" ") }
                lineHasText = true
            } else if pendingSpace {
                line.append(" ")
            }
            pendingSpace = false
            line.append(scalar)
        }
        endLine()
        var cleaned = String(output)
        if cleaned.unicodeScalars.count > maximumCharacters && cleaned.count > maximumCharacters {
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
        var counts: [String: Int] = [:]
        var order: [String: Int] = [:]
        var word = String.UnicodeScalarView()
        var letters = 0
        func finish() {
            defer {
                word.removeAll(keepingCapacity: true)
                letters = 0
            }
            while word.last == "-" { word.removeLast() }
            while word.first == "-" { word.removeFirst() }
            guard word.count >= 3, word.count <= 40, letters > 0 else { return }
            let candidate = String(word).lowercased()
            guard !Self.stopWords.contains(candidate) else { return }
            counts[candidate, default: 0] += 1
            if order[candidate] == nil { order[candidate] = order.count }
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
            } else if !word.isEmpty {
                finish()
            }
        }
        if !word.isEmpty { finish() }
        return counts.sorted { $0.value != $1.value ? $0.value > $1.value : (order[$0.key] ?? 0) < (order[$1.key] ?? 0) }
            .prefix(count).map(\.key)
    }
}
