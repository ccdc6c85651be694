import Foundation
import SextantDatasets
import SextantSupport
import SextantText

/// `sextant bench bm25`: the debian-minilm bodies tokenized as chroma_bm25 does
/// and indexed, then the 1,000 public queries answered single-threaded, top 10
/// by BM25 (k1 1.2, b 0.75), one at a time. The same documents and queries as
/// tools/compare/bm25.sh gives tantivy.
public struct BM25Benchmark: Sendable {
    public struct Report: Codable, Sendable {
        public var documents: Int
        public var terms: Int
        public var tokenize_seconds: Double
        public var index_seconds: Double
        /// Tokenizing and indexing together, as tantivy's figure includes its analyzer.
        public var build_documents_per_second: Double
        public var index_bytes: Int
        public var queries: Int
        public var qps: Double
        public var mean_hits: Double
        /// The stored form (a generation's text.bm25): its size, and the time
        /// to write it and to read it back (what an open spends on it).
        public var file_bytes: Int
        public var serialize_seconds: Double
        public var load_seconds: Double
        /// Every document replaced in its slot by another's terms, 1,000 per
        /// batch with a compaction after each (what upserts of changed
        /// records cost the index), after the queries were timed.
        public var replace_documents_per_second: Double
    }

    public var dataset: String
    public var passes = 3
    public var k = 10

    public init(dataset: String) { self.dataset = dataset }

    public func run() throws -> Report {
        let bodies = try DebianMiniLM.records(dataset).map(\.body)
        let queries = try String(contentsOfFile: dataset + "/queries.txt", encoding: .utf8)
            .split(separator: "\n", omittingEmptySubsequences: false).prefix(1_000).map(String.init)
        let tokenizer = Tokenizer()
        let clock = ContinuousClock()
        var tokenized: [[String]] = []
        let tokenizeTime = clock.measure { tokenized = bodies.map(tokenizer.tokens) }
        var index = BM25Index()
        let indexTime = clock.measure {
            for (slot, terms) in tokenized.enumerated() { index.set(slot: UInt32(slot), terms: terms) }
            index.compact()
        }
        let queryTerms = queries.map(tokenizer.tokens)
        var best = Duration.seconds(1_000_000)
        var hits = 0
        for _ in 0..<max(1, passes) {
            var found = 0
            let elapsed = clock.measure {
                for terms in queryTerms { found += index.search(terms, k: k).count }
            }
            best = min(best, elapsed)
            hits = found
        }
        var stored: [UInt8] = []
        let serializeTime = clock.measure { stored = index.serialized() }
        var loaded: BM25Index?
        let loadTime = try clock.measure { loaded = try BM25Index(serialized: stored) }
        guard loaded?.termCount == index.termCount else { throw BM25BenchmarkError("the stored index reads back with another term count") }
        let replaceTime = clock.measure {
            for start in stride(from: 0, to: tokenized.count, by: 1_000) {
                for slot in start..<min(start + 1_000, tokenized.count) {
                    index.set(slot: UInt32(slot), terms: tokenized[(slot + 1) % tokenized.count])
                }
                index.compact()
            }
        }
        let build = (tokenizeTime + indexTime).seconds
        return Report(
            documents: bodies.count, terms: index.termCount, tokenize_seconds: tokenizeTime.seconds, index_seconds: indexTime.seconds,
            build_documents_per_second: Double(bodies.count) / build, index_bytes: index.memoryBytes, queries: queryTerms.count,
            qps: Double(queryTerms.count) / best.seconds, mean_hits: Double(hits) / Double(max(1, queryTerms.count)),
            file_bytes: stored.count, serialize_seconds: serializeTime.seconds, load_seconds: loadTime.seconds,
            replace_documents_per_second: Double(tokenized.count) / replaceTime.seconds)
    }
}

struct BM25BenchmarkError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
