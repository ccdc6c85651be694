/// Does a document hold the query's words verbatim and in order? Words are
/// maximal runs of letters, digits and underscores (as the tokenizer's ASCII
/// words are; ASCII compared case-insensitively, other bytes as they are), and
/// anything else between them counts as one separator: "Spell-checking dictionaries" holds "spell checking". No
/// stemming and no stop words: this is the user's exact phrase, which BM25's
/// bag of terms cannot see. Hybrid search ranks such documents first
/// (a known-item query, a quoted error message, a title typed in full).
public struct PhraseMatcher: Sendable {
    /// Fewer words say nothing about order.
    public static let minimumWords = 2
    /// Longer queries are prose, not a phrase to find verbatim.
    public static let maximumWords = 32

    private let words: [[UInt8]]

    /// nil when the query has fewer than two or more than 32 words.
    public init?(_ query: String) {
        var words: [[UInt8]] = []
        Self.forEachWord(Array(query.utf8)[...]) { words.append(Array($0)) }
        guard (Self.minimumWords...Self.maximumWords).contains(words.count) else { return nil }
        self.words = words
    }

    public var wordCount: Int { words.count }

    public func matches(_ document: UnsafeRawBufferPointer) -> Bool {
        let bytes = document.bindMemory(to: UInt8.self)
        // At each word equal to the phrase's first, walk on word by word; no
        // allocation, and most words fail on their length or first byte.
        var position = 0
        while let first = Self.nextWord(bytes, from: position) {
            position = first.upperBound
            guard Self.equal(bytes, first, words[0]) else { continue }
            var cursor = first.upperBound
            var matched = 1
            while matched < words.count, let next = Self.nextWord(bytes, from: cursor), Self.equal(bytes, next, words[matched]) {
                cursor = next.upperBound
                matched += 1
            }
            if matched == words.count { return true }
        }
        return false
    }

    @inline(__always) private static func nextWord(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Range<Int>? {
        var index = start
        while index < bytes.count, !isWordByte(bytes[index]) { index += 1 }
        guard index < bytes.count else { return nil }
        let wordStart = index
        while index < bytes.count, isWordByte(bytes[index]) { index += 1 }
        return wordStart..<index
    }

    @inline(__always) private static func equal(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, _ word: [UInt8]) -> Bool {
        guard range.count == word.count else { return false }
        var offset = 0
        for position in range {
            if lower(bytes[position]) != word[offset] { return false }
            offset += 1
        }
        return true
    }

    @inline(__always) static func lower(_ byte: UInt8) -> UInt8 { byte &- 0x41 < 26 ? byte | 0x20 : byte }

    @inline(__always) static func isWordByte(_ byte: UInt8) -> Bool {
        byte >= 0x80 || (byte &- 0x30 < 10) || (byte &- 0x41 < 26) || (byte &- 0x61 < 26) || byte == 0x5F
    }

    static func forEachWordRange(_ bytes: UnsafeBufferPointer<UInt8>, _ body: (Range<Int>) -> Void) {
        var index = 0
        while index < bytes.count {
            guard isWordByte(bytes[index]) else {
                index += 1
                continue
            }
            let start = index
            while index < bytes.count, isWordByte(bytes[index]) { index += 1 }
            body(start..<index)
        }
    }

    static func forEachWord(_ bytes: ArraySlice<UInt8>, _ body: ([UInt8]) -> Void) {
        bytes.withUnsafeBufferPointer { buffer in
            forEachWordRange(buffer) { range in body(range.map { lower(buffer[$0]) }) }
        }
    }
}
