import Synchronization

/// Text to BM25 terms exactly as chromadb-client's `chroma_bm25` embedding
/// function makes them (`Bm25Tokenizer`): every run of characters that are
/// neither word characters nor whitespace becomes a space, the text is
/// lowercased and split on whitespace, English stop words and tokens longer
/// than 40 characters are dropped, the rest stemmed (`EnglishStemmer`).
/// Matching it term for term is what lets Chroma's sparse vectors and the
/// engine's own full-text index agree (SextantTextTests check it against the
/// Python tokenizer on the debian-minilm documents).
public struct Tokenizer: Sendable {
    /// Tokens longer than this many code points are dropped (identifiers,
    /// hashes, URLs run together), as chroma_bm25 does.
    public static let maximumTokenLength = 40

    /// Lowercased tokens to their terms ("" for a stop word), shared by every
    /// tokenizer of the process: stemming is a pure function, and words repeat
    /// so much (Zipf) that nearly every token after the first thousand
    /// documents is a lookup instead of a Snowball run.
    private let cache: TermCache?

    /// `sharedCache` false: stem every token, never touching the shared
    /// cache's lock. Queries use that: a few words each, and a niced writer
    /// holding the lock while the scheduler kept it off the CPU stalled them
    /// (hybrid p99 75 ms during an ingest, event loops waiting in `lookup`).
    public init(sharedCache: Bool = true) { cache = sharedCache ? TermCache.shared : nil }

    public func tokens(_ text: String) -> [String] {
        var text = text
        // Most documents are ASCII: their tokens are the runs of [A-Za-z0-9_],
        // found byte by byte without building a scalar array.
        if let ascii = text.withUTF8({ asciiTokens($0) }) { return ascii }
        return generalTokens(text)
    }

    /// nil as soon as a byte is not ASCII (the general path takes the text).
    private func asciiTokens(_ bytes: UnsafeBufferPointer<UInt8>) -> [String]? {
        var result: [String] = []
        result.reserveCapacity(bytes.count / 6)
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Self.maximumTokenLength) { lowered in
            var index = 0
            let count = bytes.count
            while index < count {
                let byte = bytes[index]
                if byte >= 0x80 { return nil }
                guard Self.asciiWord[Int(byte)] else {
                    index += 1
                    continue
                }
                let start = index
                while index < count, bytes[index] < 0x80, Self.asciiWord[Int(bytes[index])] { index += 1 }
                if index < count, bytes[index] >= 0x80 { return nil }
                let length = index - start
                guard length <= Self.maximumTokenLength else { continue }
                for offset in 0..<length {
                    let byte = bytes[start + offset]
                    lowered[offset] = byte &- 0x41 < 26 ? byte | 0x20 : byte
                }
                let token = String(decoding: UnsafeBufferPointer(rebasing: lowered[0..<length]), as: UTF8.self)
                let term = term(token)
                if !term.isEmpty { result.append(term) }
            }
            return result
        }
    }

    private func generalTokens(_ text: String) -> [String] {
        var cleaned = String.UnicodeScalarView()
        var inRun = false
        for scalar in text.unicodeScalars {
            if Self.isWordCharacter(scalar) || Self.isSpace(scalar) {
                cleaned.append(scalar)
                inRun = false
            } else if !inRun {
                cleaned.append(" ")
                inRun = true
            }
        }
        var result: [String] = []
        for raw in Self.lowercased(Array(cleaned)).split(whereSeparator: Self.isSpace) {
            guard raw.count <= Self.maximumTokenLength else { continue }
            let term = term(String(String.UnicodeScalarView(raw)))
            if !term.isEmpty { result.append(term) }
        }
        return result
    }

    /// A lowercased token's term: "" for a stop word or an empty stem.
    private func term(_ token: String) -> String {
        if let known = cache?.lookup(token) { return known }
        let term = Self.stopWords.contains(token) ? "" : Self.trimmed(EnglishStemmer.stem(token))
        cache?.insert(token, term)
        return term
    }

    /// [A-Za-z0-9_]: Python's `\w` restricted to ASCII.
    private static let asciiWord: [Bool] = (0..<256).map { byte in
        (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) || byte == 0x5F
    }

    /// Python's `str.lower`: each scalar's full lowercase mapping, and capital
    /// sigma as final sigma (ς) at the end of a word (Unicode's Final_Sigma
    /// condition), which Swift's `lowercased()` does not apply.
    static func lowercased(_ scalars: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var result: [Unicode.Scalar] = []
        result.reserveCapacity(scalars.count)
        for (index, scalar) in scalars.enumerated() {
            if scalar.value == 0x03A3 {
                result.append(isFinalSigma(scalars, index) ? "\u{03C2}" : "\u{03C3}")
                continue
            }
            if scalar.isASCII {
                result.append(scalar.properties.isUppercase ? Unicode.Scalar(scalar.value + 32) ?? scalar : scalar)
                continue
            }
            result.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
        }
        return result
    }

    private static func isFinalSigma(_ scalars: [Unicode.Scalar], _ index: Int) -> Bool {
        var before = index - 1
        while before >= 0, scalars[before].properties.isCaseIgnorable { before -= 1 }
        guard before >= 0, scalars[before].properties.isCased else { return false }
        var after = index + 1
        while after < scalars.count, scalars[after].properties.isCaseIgnorable { after += 1 }
        return !(after < scalars.count && scalars[after].properties.isCased)
    }

    /// Python's `\w` on str patterns: letters (L*), characters with a numeric
    /// value (N*), and the underscore. Marks are not word characters there.
    static func isWordCharacter(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.isASCII {
            let value = scalar.value
            return (0x30...0x39).contains(value) || (0x41...0x5A).contains(value) || (0x61...0x7A).contains(value) || value == 0x5F
        }
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return scalar.properties.numericType != nil
        }
    }

    /// Python's `str.isspace`: Unicode White_Space plus the four information
    /// separators (U+001C-U+001F), which Python also splits on.
    static func isSpace(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.isASCII { return (0x09...0x0D).contains(scalar.value) || (0x1C...0x20).contains(scalar.value) }
        return scalar.properties.isWhitespace
    }

    private static func trimmed(_ text: String) -> String {
        let scalars = text.unicodeScalars
        guard let first = scalars.firstIndex(where: { !isSpace($0) }),
              let last = scalars.lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(scalars[first...last])
    }

    /// chromadb's DEFAULT_CHROMA_BM25_STOPWORDS (NLTK's English list).
    public static let stopWords: Set<String> = [
        "a", "about", "above", "after", "again", "against", "ain", "all", "am", "an", "and", "any", "are", "aren", "aren't",
        "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "couldn",
        "couldn't", "d", "did", "didn", "didn't", "do", "does", "doesn", "doesn't", "doing", "don", "don't", "down",
        "during", "each", "few", "for", "from", "further", "had", "hadn", "hadn't", "has", "hasn", "hasn't", "have",
        "haven", "haven't", "having", "he", "her", "here", "hers", "herself", "him", "himself", "his", "how", "i", "if",
        "in", "into", "is", "isn", "isn't", "it", "it's", "its", "itself", "just", "ll", "m", "ma", "me", "mightn",
        "mightn't", "more", "most", "mustn", "mustn't", "my", "myself", "needn", "needn't", "no", "nor", "not", "now", "o",
        "of", "off", "on", "once", "only", "or", "other", "our", "ours", "ourselves", "out", "over", "own", "re", "s",
        "same", "shan", "shan't", "she", "she's", "should", "should've", "shouldn", "shouldn't", "so", "some", "such", "t",
        "than", "that", "that'll", "the", "their", "theirs", "them", "themselves", "then", "there", "these", "they", "this",
        "those", "through", "to", "too", "under", "until", "up", "ve", "very", "was", "wasn", "wasn't", "we", "were",
        "weren", "weren't", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "won",
        "won't", "wouldn", "wouldn't", "y", "you", "you'd", "you'll", "you're", "you've", "your", "yours", "yourself",
        "yourselves",
    ]
}

/// A bounded map of lowercased tokens to terms. Past `maximumEntries` it stops
/// growing (new words are stemmed each time), so a stream of unique tokens
/// (hashes, serial numbers) cannot grow memory without bound.
final class TermCache: Sendable {
    static let shared = TermCache()
    /// About 20 MB at the bound: far more distinct words than any language has.
    static let maximumEntries = 200_000
    private let entries = Mutex<[String: String]>([:])

    func lookup(_ token: String) -> String? { entries.withLock { $0[token] } }

    func insert(_ token: String, _ term: String) {
        entries.withLock { entries in
            if entries.count < Self.maximumEntries { entries[token] = term }
        }
    }
}
