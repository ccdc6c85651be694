import Foundation
import SextantDatasets
import SextantTestSupport
import SextantText
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// MaxScore's pruning must not change the answer: every top-k equals the
/// exhaustive BM25 ranking of the same documents, on the debian-minilm bodies
/// with the public queries, before and after replacements and deletes.
@Suite struct BM25IndexTests {
    /// Term counts per indexed document: a document without terms is not
    /// indexed, so it counts in neither n nor the average length.
    struct Corpus {
        var counts: [UInt32: [String: Int]] = [:]
        var lengths: [UInt32: Int] = [:]
        init(_ documents: [UInt32: [String]]) {
            for (slot, words) in documents where !words.isEmpty {
                var tally: [String: Int] = [:]
                for word in words { tally[word, default: 0] += 1 }
                counts[slot] = tally
                lengths[slot] = words.count
            }
        }
    }

    /// Exhaustive BM25: every document scored, sorted; the reference.
    static func exhaustive(_ corpus: Corpus, _ query: [String], k: Int,
                           parameters: BM25Index.Parameters = .init()) -> [BM25Index.Hit] {
        let terms = Array(Set(query))
        let n = Double(corpus.counts.count)
        let averageLength = Double(corpus.lengths.values.reduce(0, +)) / n
        var holding: [String: Int] = [:]
        for counts in corpus.counts.values {
            for term in terms where counts[term] != nil { holding[term, default: 0] += 1 }
        }
        var hits: [BM25Index.Hit] = []
        for (slot, counts) in corpus.counts {
            var score = 0.0
            var matched = false
            for term in terms {
                guard let tf = counts[term], let nt = holding[term] else { continue }
                matched = true
                let idf = log(1 + (n - Double(nt) + 0.5) / (Double(nt) + 0.5))
                let norm = parameters.k1 * (1 - parameters.b + parameters.b * Double(corpus.lengths[slot] ?? 0) / averageLength)
                score += idf * Double(tf) * (parameters.k1 + 1) / (Double(tf) + norm)
            }
            if matched { hits.append(BM25Index.Hit(slot: slot, score: score)) }
        }
        hits.sort { $0.score > $1.score || ($0.score == $1.score && $0.slot < $1.slot) }
        return Array(hits.prefix(k))
    }

    /// Equal up to summation order: same scores within 1e-9, same slots except
    /// where two scores lie within 1e-9 of each other (a tie either may break).
    static func agree(_ found: [BM25Index.Hit], _ expected: [BM25Index.Hit]) -> Bool {
        guard found.count == expected.count else { return false }
        for (a, b) in zip(found, expected) where abs(a.score - b.score) > 1e-9 * max(1, abs(b.score)) { return false }
        let tolerance = 1e-9
        let boundary = expected.last?.score ?? 0
        let sure = { (hits: [BM25Index.Hit]) in Set(hits.filter { abs($0.score - boundary) > tolerance * max(1, boundary) }.map(\.slot)) }
        return sure(found) == sure(expected)
    }

    static func corpus(limit: Int) throws -> [String] {
        try DebianMiniLM.records(TestDataset.debianMiniLM, limit: limit).map(\.body)
    }

    @Test func topTenEqualsExhaustiveBM25OnRealDocuments() throws {
        let tokenizer = Tokenizer()
        let bodies = try Self.corpus(limit: 8_000)
        var documents: [UInt32: [String]] = [:]
        var index = BM25Index()
        for (slot, body) in bodies.enumerated() {
            let terms = tokenizer.tokens(body)
            documents[UInt32(slot)] = terms
            index.set(slot: UInt32(slot), terms: terms)
        }
        let queries = try String(contentsOfFile: TestDataset.file("queries.txt"), encoding: .utf8)
            .split(separator: "\n").prefix(200).map { tokenizer.tokens(String($0)) }
        func check(_ label: String) {
            let corpus = Corpus(documents)
            var disagreements = 0
            for query in queries {
                if !Self.agree(index.search(query, k: 10), Self.exhaustive(corpus, query, k: 10)) { disagreements += 1 }
            }
            #expect(disagreements == 0, "\(label): \(disagreements) of \(queries.count) queries differ")
        }
        check("as loaded")
        // Replace every seventh document with another's terms, delete every eleventh, add some out of order.
        for slot in stride(from: 0, to: bodies.count, by: 7) {
            let terms = tokenizer.tokens(bodies[(slot * 31) % bodies.count])
            documents[UInt32(slot)] = terms
            index.set(slot: UInt32(slot), terms: terms)
        }
        for slot in stride(from: 3, to: bodies.count, by: 11) {
            documents[UInt32(slot)] = nil
            index.remove(slot: UInt32(slot))
        }
        for slot in stride(from: 3, to: 600, by: 11) {
            let terms = tokenizer.tokens(bodies[slot + 1])
            documents[UInt32(slot)] = terms
            index.set(slot: UInt32(slot), terms: terms)
        }
        #expect(index.documentCount == documents.values.filter { !$0.isEmpty }.count)
        check("after replacements and deletes")

        // The stored form reads back to an index that answers the same, and keeps taking changes.
        var stored = try BM25Index(serialized: index.serialized())
        #expect(stored.documentCount == index.documentCount && stored.termCount <= index.termCount)
        // Same hits; scores to the last bits (terms of equal bound may be summed in another order).
        for query in queries { #expect(Self.agree(stored.search(query, k: 10), index.search(query, k: 10))) }
        stored.remove(slot: 14)
        index.remove(slot: 14)
        for query in queries.prefix(20) { #expect(Self.agree(stored.search(query, k: 10), index.search(query, k: 10))) }
    }

    @Test func damagedStoredFormIsAnErrorNeverACrash() throws {
        var index = BM25Index()
        let tokenizer = Tokenizer()
        for (slot, body) in try Self.corpus(limit: 300).enumerated() { index.set(slot: UInt32(slot), terms: tokenizer.tokens(body)) }
        let bytes = index.serialized()
        #expect(try BM25Index(serialized: bytes).documentCount == index.documentCount)
        var generator = SeededGenerator(seed: 5)
        for trial in 0..<400 {
            var damaged = bytes
            switch trial % 3 {
            case 0: damaged = Array(damaged.prefix(Int.random(in: 0..<damaged.count, using: &generator)))
            case 1:
                let position = Int.random(in: 0..<damaged.count, using: &generator)
                damaged[position] ^= UInt8.random(in: 1...255, using: &generator)
            default: damaged += [UInt8](repeating: UInt8.random(in: 0...255, using: &generator), count: Int.random(in: 1...64, using: &generator))
            }
            // A flipped frequency or length byte can still parse; the rest throws (typed: FormatError). Never a trap.
            _ = try? BM25Index(serialized: damaged)
        }
        #expect(throws: BM25Index.FormatError.self) { try BM25Index(serialized: Array("SXBM25".utf8) + [0, 9]) }
    }

    @Test func smallCasesAndBounds() {
        var index = BM25Index()
        #expect(index.search(["anything"], k: 10).isEmpty)
        index.set(slot: 5, terms: ["apple", "banana", "apple"])
        index.set(slot: 2, terms: ["banana"])
        index.set(slot: 9, terms: [])
        #expect(index.documentCount == 2)
        let hits = index.search(["apple", "banana", "cherry"], k: 10)
        #expect(hits.map(\.slot) == [5, 2])
        #expect(index.search(["banana"], k: 1).count == 1)
        #expect(index.search(["banana"], k: 0).isEmpty)
        index.remove(slot: 5)
        #expect(index.search(["apple"], k: 10).isEmpty)
        #expect(index.search(["banana"], k: 10).map(\.slot) == [2])
    }
}
