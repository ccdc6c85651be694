import Foundation

/// BERT's uncased WordPiece tokenizer, as all-MiniLM-L6-v2's tokenizer config
/// specifies (BertNormalizer with clean_text, handle_chinese_chars, lowercase
/// and accent stripping; BertPreTokenizer; WordPiece with "##" continuations,
/// [UNK] for words over 100 characters or without a segmentation). Checked
/// against the `tokenizers` package in Tests/SextantMiniLMTests.
public struct WordPieceTokenizer: Sendable {
    public let vocabulary: [String: Int32]
    public let clsID: Int32
    public let sepID: Int32
    public let unknownID: Int32
    public static let maximumCharactersPerWord = 100

    public init(vocabularyPath: String) throws {
        guard let text = try? String(contentsOfFile: vocabularyPath, encoding: .utf8) else {
            throw MiniLMError("cannot read the vocabulary \(vocabularyPath)")
        }
        var vocabulary: [String: Int32] = [:]
        var index: Int32 = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let token = line.hasSuffix("\r") ? String(line.dropLast()) : String(line)
            if !token.isEmpty && vocabulary[token] == nil { vocabulary[token] = index }
            index += 1
        }
        guard let cls = vocabulary["[CLS]"], let sep = vocabulary["[SEP]"], let unk = vocabulary["[UNK]"] else {
            throw MiniLMError("\(vocabularyPath) lacks [CLS], [SEP] or [UNK]")
        }
        self.vocabulary = vocabulary
        clsID = cls
        sepID = sep
        unknownID = unk
    }

    /// [CLS] pieces… [SEP], at most `maximumTokens` ids in all.
    public func encode(_ text: String, maximumTokens: Int) -> [Int32] {
        var ids: [Int32] = [clsID]
        let budget = max(0, maximumTokens - 2)
        outer: for word in Self.preTokenize(Self.normalize(text)) {
            for id in wordPieces(word) {
                if ids.count - 1 >= budget { break outer }
                ids.append(id)
            }
        }
        ids.append(sepID)
        return ids
    }

    /// The normalised text: control characters removed, whitespace unified,
    /// spaces around CJK ideographs, accents stripped (NFD, marks dropped), lower case.
    static func normalize(_ text: String) -> String {
        var cleaned = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            let value = scalar.value
            // As the `tokenizers` crate: control characters go first, then whitespace becomes a space.
            if value == 0 || value == 0xFFFD || isControl(scalar) { continue }
            if isWhitespace(scalar) {
                cleaned.append(" ")
                continue
            }
            if isCJK(value) {
                cleaned.append(" ")
                cleaned.append(scalar)
                cleaned.append(" ")
                continue
            }
            cleaned.append(scalar)
        }
        var stripped = String.UnicodeScalarView()
        for scalar in String(cleaned).decomposedStringWithCanonicalMapping.unicodeScalars
        where scalar.properties.generalCategory != .nonspacingMark {
            stripped.append(scalar)
        }
        return String(stripped).lowercased()
    }

    /// Whitespace-separated words, each punctuation character its own word.
    static func preTokenize(_ text: String) -> [String] {
        var words: [String] = []
        var current = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if isWhitespace(scalar) {
                if !current.isEmpty { words.append(String(current)); current.removeAll() }
            } else if isPunctuation(scalar) {
                if !current.isEmpty { words.append(String(current)); current.removeAll() }
                words.append(String(scalar))
            } else {
                current.append(scalar)
            }
        }
        if !current.isEmpty { words.append(String(current)) }
        return words
    }

    func wordPieces(_ word: String) -> [Int32] {
        let scalars = Array(word.unicodeScalars)
        guard scalars.count <= Self.maximumCharactersPerWord else { return [unknownID] }
        var pieces: [Int32] = []
        var start = 0
        while start < scalars.count {
            var end = scalars.count
            var found: Int32? = nil
            while start < end {
                var candidate = String(String.UnicodeScalarView(scalars[start..<end]))
                if start > 0 { candidate = "##" + candidate }
                if let id = vocabulary[candidate] {
                    found = id
                    break
                }
                end -= 1
            }
            guard let id = found else { return [unknownID] }
            pieces.append(id)
            start = end
        }
        return pieces
    }

    static func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x20, 0x09, 0x0A, 0x0D: return true
        default: return scalar.properties.isWhitespace  // Rust's char::is_whitespace
        }
    }

    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09, 0x0A, 0x0D: return false
        default:
            let category = scalar.properties.generalCategory
            return category == .control || category == .format || category == .privateUse || category == .surrogate
                || category == .unassigned
        }
    }

    static func isPunctuation(_ scalar: Unicode.Scalar) -> Bool {
        let value = scalar.value
        if (33...47).contains(value) || (58...64).contains(value) || (91...96).contains(value) || (123...126).contains(value) {
            return true
        }
        switch scalar.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation, .finalPunctuation,
             .otherPunctuation:
            return true
        default:
            return false
        }
    }

    static func isCJK(_ value: UInt32) -> Bool {
        (0x4E00...0x9FFF).contains(value) || (0x3400...0x4DBF).contains(value) || (0x20000...0x2A6DF).contains(value)
            || (0x2A700...0x2B73F).contains(value) || (0x2B740...0x2B81F).contains(value) || (0x2B820...0x2CEAF).contains(value)
            || (0xF900...0xFAFF).contains(value) || (0x2F800...0x2FA1F).contains(value)
    }
}

public struct MiniLMError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
