import Foundation
import SextantDatasets
import SextantJSON
import SextantMiniLM
import SextantTestSupport
import Testing

/// all-MiniLM-L6-v2 in Swift against the references: token ids from the
/// `tokenizers` package, vectors from the shared debian-minilm dataset (made by
/// the numpy implementation of the same model).
@Suite struct MiniLMTests {
    static var modelDirectory: String? { MiniLMEmbedder.locateModel(executable: SextantBinary.path) }

    /// Varied strings: real queries and records, and the corners of BERT's normalisation.
    static func samples() throws -> [String] {
        let queries = try String(contentsOfFile: TestDataset.file("queries.txt"), encoding: .utf8).split(separator: "\n").prefix(200).map(String.init)
        var strings = queries
        strings += [
            "Héllo Wörld! Ça va? naïve café résumé", "ÀÉÎÕÜ àéîõü ñÑ ßẞ", "東京タワーと北京大学 中文分词 한국어 텍스트",
            "emoji 😀🚀 and symbols ©®™ ±×÷ ≤≥≠", "tabs\tand\nnew\r\nlines  and   spaces", "zero\u{200B}width\u{200D}joiner",
            "control\u{0007}char\u{001F}s and \u{0085}next-line\u{2028}line-sep", "nbsp\u{00A0}and\u{3000}ideographic space",
            "punctuation!!! (parens) [brackets] {braces} <angles> \"quotes\" 'single' `back`", "a-b_c.d,e;f:g/h\\i|j~k^l$m#n%o&p*q+r=s@t?u",
            "UPPER lower MiXeD CaSe", "1234567890 3.14159 1,000,000 -42 +7 1e-9", String(repeating: "x", count: 101),
            String(repeating: "supercalifragilistic", count: 4), "unaffable unbelievable antidisestablishmentarianism",
            "ﬁ ligature ﬂ and full-width ＡＢＣ１２３", "Ελληνικά Русский עברית العربية हिन्दी ไทย", "", "   ",
            "curl: transfer a URL (https://example.org/path?query=1&b=2#frag)", "C++ C# F# .NET node.js x86_64 ARM64",
            "\u{FFFD}replacement \u{0000}nul", "e\u{0301}te\u{0301} combining accents", "Ǆ ǅ ǆ İstanbul ı",
        ]
        let records = try DatasetRecords.first(60)
        strings += records
        return strings
    }

    @Test func tokenizerMatchesHuggingFaceTokenizers() throws {
        guard let directory = Self.modelDirectory else {
            Issue.record("all-MiniLM-L6-v2 weights missing: \(MiniLMEmbedder.installHint)")
            return
        }
        let tokenizer = try WordPieceTokenizer(vocabularyPath: directory + "/vocab.txt")
        let strings = try Self.samples()
        let temporary = TemporaryDirectory("sextant-minilm")
        defer { temporary.remove() }
        let input = temporary.file("strings.jsonl")
        try strings.map { JSON.serialize(.string($0)) }.joined(separator: "\n").appending("\n")
            .write(toFile: input, atomically: true, encoding: .utf8)
        let (status, output) = try TestPython.run("tools/python/tokenize_reference.py", [directory, input, "256"])
        #expect(status == 0, "\(output.suffix(2_000))")
        let expected = output.split(separator: "\n").compactMap { line -> [Int32]? in
            try? JSON.parse(Array(line.utf8)).arrayValue?.compactMap { $0.intValue.map(Int32.init) }
        }
        #expect(expected.count == strings.count)
        var mismatches = 0
        for (text, reference) in zip(strings, expected) {
            let ids = tokenizer.encode(text, maximumTokens: 256)
            if ids != reference {
                mismatches += 1
                if mismatches <= 5 { Issue.record("tokens differ for \(text.debugDescription.prefix(120)): \(ids.prefix(20)) vs \(reference.prefix(20))") }
            }
        }
        #expect(mismatches == 0, "\(mismatches) of \(strings.count) strings tokenised differently")
    }

    /// Through `sextant embed` (a real process, as the tools use it): every
    /// 20th query and every 800th record have cosine ≥ 0.999 with the shared
    /// vectors. The model runs in its own process: OpenBLAS inside the test
    /// process stalled Swift Testing's executor when several suites ran at once.
    @Test func vectorsMatchTheSharedReference() throws {
        guard Self.modelDirectory != nil else {
            Issue.record("all-MiniLM-L6-v2 weights missing: \(MiniLMEmbedder.installHint)")
            return
        }
        let temporary = TemporaryDirectory("sextant-minilm-faithful")
        defer { temporary.remove() }
        let queries = try String(contentsOfFile: TestDataset.file("queries.txt"), encoding: .utf8).split(separator: "\n").map(String.init)
        let records = try DatasetRecords.first(40_000)
        let queryIndexes = Array(stride(from: 0, to: 1_000, by: 20))
        let recordIndexes = Array(stride(from: 0, to: 40_000, by: 800))
        func embed(_ texts: [String], maxTokens: Int, name: String) throws -> [[Float]] {
            let lines = texts.map { $0.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\r", with: " ") }
            try lines.joined(separator: "\n").appending("\n").write(toFile: temporary.file(name + ".txt"), atomically: true, encoding: .utf8)
            let (status, _, err) = try SextantBinary.run(["embed", "--input", temporary.file(name + ".txt"), "--output",
                                                          temporary.file(name + ".fvecs"), "--max-tokens", "\(maxTokens)"])
            #expect(status == 0, "\(err)")
            return try VectorReader.rows(temporary.file(name + ".fvecs"), count: texts.count)
        }
        let ours = try embed(queryIndexes.map { queries[$0] }, maxTokens: 256, name: "queries")
            + embed(recordIndexes.map { records[$0] }, maxTokens: 128, name: "records")  // the dataset's truncation
        let queryVectors = try VectorReader.rows(TestDataset.file("queries.fvecs"), count: 1_000)
        let recordVectors = try VectorReader.rows(TestDataset.file("base.fvecs"), count: 40_000)
        let reference = queryIndexes.map { queryVectors[$0] } + recordIndexes.map { recordVectors[$0] }
        #expect(ours.count == reference.count)
        var worst: Float = 1
        for (a, b) in zip(ours, reference) {
            #expect(a.count == 384)
            worst = min(worst, zip(a, b).reduce(0) { $0 + $1.0 * $1.1 })
        }
        #expect(worst >= 0.999, "lowest cosine \(worst)")
    }

    @Test func embedCommandWritesFvecsInOrder() throws {
        guard Self.modelDirectory != nil else {
            Issue.record("all-MiniLM-L6-v2 weights missing: \(MiniLMEmbedder.installHint)")
            return
        }
        let temporary = TemporaryDirectory("sextant-embed")
        defer { temporary.remove() }
        let queries = try String(contentsOfFile: TestDataset.file("queries.txt"), encoding: .utf8).split(separator: "\n").prefix(30)
        try queries.joined(separator: "\n").appending("\n").write(toFile: temporary.file("in.txt"), atomically: true, encoding: .utf8)
        let (status, _, err) = try SextantBinary.run(["embed", "--input", temporary.file("in.txt"), "--output", temporary.file("out.fvecs")])
        #expect(status == 0, "\(err)")
        let ours = try VectorReader.rows(temporary.file("out.fvecs"), count: 30)
        let reference = try VectorReader.rows(TestDataset.file("queries.fvecs"), count: 30)
        for (a, b) in zip(ours, reference) { #expect(zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } >= 0.999) }
        let missing = try SextantBinary.run(["embed", "--input", temporary.file("in.txt"), "--output", temporary.file("x.fvecs"),
                                             "--model", temporary.file("nowhere")])
        #expect(missing.0 != 0)
    }
}

enum DatasetRecords {
    /// title + ". " + body of the first `count` records, in corpus order.
    static func first(_ count: Int) throws -> [String] {
        let (status, output) = try TestPython.run(
            "-c", ["import gzip,json,sys\nfor i,l in enumerate(gzip.open(sys.argv[1],'rt',encoding='utf-8')):\n if i>=int(sys.argv[2]): break\n r=json.loads(l); print(json.dumps(r['title']+'. '+r['body']))",
                   TestDataset.file("records.jsonl.gz"), "\(count)"])
        guard status == 0 else { throw MiniLMError("cannot read records: \(output.prefix(500))") }
        return output.split(separator: "\n").compactMap { try? JSON.parse(Array($0.utf8)).stringValue }
    }
}

enum VectorReader {
    /// The first `count` rows of an fvecs file, through the dataset module's reader.
    static func rows(_ path: String, count: Int) throws -> [[Float]] {
        let file = try VectorFiles.readFvecs(path)
        return (0..<min(count, file.rows)).map { Array(file.row($0)) }
    }
}
