import Foundation
import SextantTestSupport
import SextantText
import Testing

/// The tokenizer and stemmer against chromadb's own Python code (the reference
/// is computed by tools/python/bm25_reference.py with snowballstemmer), so that
/// terms made here and sparse vectors made by chroma_bm25 agree.
@Suite(.serialized) struct TokenizerTests {
    struct Reference: Decodable {
        var stopwords: [String]
        var stems: [String: String]
        var documents: [[Document]]

        enum Document: Decodable {
            case text(String)
            case tokens([String])
            init(from decoder: any Decoder) throws {
                let container = try decoder.singleValueContainer()
                if let text = try? container.decode(String.self) { self = .text(text) } else { self = .tokens(try container.decode([String].self)) }
            }
        }
    }

    static let reference: Result<Reference, any Error> = Result {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("bm25-reference-\(getpid()).json").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let (status, output) = try TestPython.run(
            "tools/python/bm25_reference.py", [TestDataset.file("records.jsonl.gz"), out, "8"])
        guard status == 0 else { throw ReferenceError(message: output) }
        return try JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: out)))
    }

    struct ReferenceError: Error, CustomStringConvertible {
        var message: String
        var description: String { message }
    }

    @Test func stopWordsAreChromas() throws {
        #expect(Tokenizer.stopWords == Set(try Self.reference.get().stopwords))
    }

    @Test func everyWordStemsAsSnowball() throws {
        let stems = try Self.reference.get().stems
        #expect(stems.count > 50_000)
        var mismatches: [String] = []
        for (word, stem) in stems where EnglishStemmer.stem(word) != stem {
            mismatches.append("\(word): \(EnglishStemmer.stem(word)) ≠ \(stem)")
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) of \(stems.count): \(mismatches.prefix(20))")
    }

    @Test func documentsTokenizeAsChromaBM25() throws {
        let documents = try Self.reference.get().documents
        #expect(documents.count > 5_000)
        let tokenizer = Tokenizer()
        var mismatches = 0
        var first: String?
        for pair in documents {
            guard pair.count == 2, case .text(let text) = pair[0], case .tokens(let expected) = pair[1] else {
                Issue.record("malformed reference entry")
                continue
            }
            let tokens = tokenizer.tokens(text)
            if tokens != expected {
                mismatches += 1
                if first == nil { first = "\(text.prefix(200)) → \(tokens) ≠ \(expected)" }
            }
        }
        #expect(mismatches == 0, "\(mismatches) of \(documents.count) documents differ; first: \(first ?? "")")
    }

    /// Cases the algorithm's definition names, independent of the reference file.
    @Test func namedCases() {
        let cases = [
            ("consign", "consign"), ("consigned", "consign"), ("knack", "knack"), ("knackeries", "knackeri"),
            ("generously", "generous"), ("skies", "sky"), ("dying", "die"), ("news", "news"), ("succeeded", "succeed"),
            ("hopping", "hop"), ("hoping", "hope"), ("cry", "cri"), ("by", "by"), ("say", "say"), ("yelling", "yell"),
        ]
        for (word, stem) in cases { #expect(EnglishStemmer.stem(word) == stem, "\(word)") }
        #expect(Tokenizer().tokens("The Quick-Brown foxes: jumping!") == ["quick", "brown", "fox", "jump"])
        #expect(Tokenizer().tokens(String(repeating: "x", count: 41)) == [])
        #expect(Tokenizer().tokens("") == [])
    }
}
