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

    public init() {}

    public func tokens(_ text: String) -> [String] {
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
            let token = String(String.UnicodeScalarView(raw))
            if Self.stopWords.contains(token) || raw.count > Self.maximumTokenLength { continue }
            let stemmed = Self.trimmed(EnglishStemmer.stem(token))
            if !stemmed.isEmpty { result.append(stemmed) }
        }
        return result
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
