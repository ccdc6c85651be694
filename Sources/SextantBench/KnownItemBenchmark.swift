import Foundation
import SextantDatasets
import SextantPayload
import SextantStorage
import SextantSupport
import SextantText

/// `sextant bench known-item`: can a user find a record again from a few of
/// its words? 1,000 records of debian-minilm are drawn at random (seeded); each
/// query is 4-8 consecutive words of the record's body that occur, in that
/// order, in no other record (ignoring case and punctuation between words). The whole dataset sits
/// in one collection with its text index (documents as they were embedded:
/// title, then body); each query runs semantic (its MiniLM embedding), lexical
/// (BM25) and hybrid (reciprocal rank fusion, k 60), and the benchmark reports
/// each mode's MRR@10 (the mean of 1 / rank of the record, 0 past rank 10) and
/// recall@10 side by side, with their mean latency in process.
public struct KnownItemBenchmark {
    public struct Report: Codable, Sendable {
        public struct Mode: Codable, Sendable {
            public var mode: String
            public var mrr_at_10: Double
            public var recall_at_10: Double
            public var mean_milliseconds: Double
        }
        public var records: Int
        public var queries: Int
        public var seed: UInt64
        public var words_per_query: String
        /// Windows drawn and refused because another record holds them too.
        public var shared_windows_skipped: Int
        public var modes: [Mode]
    }

    public var dataset: String
    public var queries = 1_000
    public var seed: UInt64 = 1
    public var workDirectory = "/tmp"

    public init(dataset: String) { self.dataset = dataset }

    /// `embed` turns query texts into vectors of the dataset's model (the CLI
    /// passes MiniLM); the benchmark itself needs no model.
    public func run(embed: ([String]) throws -> [[Float]], progress: (String) -> Void) async throws -> Report {
        let records = try DebianMiniLM.records(dataset)
        let vectors = try VectorFiles.readFvecs(dataset + "/base.fvecs")
        // A query must name its record: its words, in order, appear in no other
        // record's document (debian-minilm is full of shared boilerplate such
        // as "This package contains the documentation", which no method can
        // resolve). Candidates are the records holding the window's rarest word.
        let documents = records.map(\.embeddedText)
        var holders: [Substring: [Int]] = [:]
        for (index, document) in documents.enumerated() {
            for word in Set(document.split(whereSeparator: { $0.isWhitespace })) { holders[word, default: []].append(index) }
        }
        var generator = SplitMix64(seed: seed)
        var chosen: [(record: Int, text: String)] = []
        var attempts = 0
        var skipped = 0
        while chosen.count < queries {
            attempts += 1
            guard attempts < 100 * queries else { throw KnownItemError("could not draw \(queries) identifying word windows") }
            let index = Int(generator.next() % UInt64(records.count))
            let words = records[index].body.split(whereSeparator: { $0.isWhitespace })
            guard words.count >= 8, !chosen.contains(where: { $0.record == index }) else { continue }
            let length = 4 + Int(generator.next() % 5)
            let start = Int(generator.next() % UInt64(words.count - length + 1))
            let window = words[start..<start + length]
            let text = window.joined(separator: " ")
            let rarest = window.min { (holders[$0]?.count ?? 0) < (holders[$1]?.count ?? 0) }
            // Judged as hybrid search judges a phrase: ignoring case and punctuation between words.
            guard let phrase = PhraseMatcher(text) else { continue }
            let others = (rarest.flatMap { holders[$0] } ?? []).filter { other in
                other != index && documents[other].utf8.withContiguousStorageIfAvailable { phrase.matches(UnsafeRawBufferPointer($0)) } != false
            }
            guard others.isEmpty else {
                skipped += 1
                continue
            }
            chosen.append((index, text))
        }
        progress("embedding \(chosen.count) queries")
        let queryVectors = try embed(chosen.map(\.text))

        let folder = workDirectory + "/sextant-known-item-\(getpid())"
        try? FileManager.default.removeItem(atPath: folder)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let engine = try StorageEngine(directory: folder)
        defer { engine.indexer.stop() }
        let (collection, _) = try await engine.create(CollectionConfiguration(
            name: "known-item", dimension: vectors.dimensions, metric: .cosine, textIndex: TextIndexSettings()))
        progress("loading \(records.count) records")
        for start in stride(from: 0, to: records.count, by: 1_000) {
            let batch = (start..<min(start + 1_000, records.count)).map { index in
                RecordInput(id: records[index].id, vector: Array(vectors.row(index)), document: records[index].embeddedText)
            }
            try await collection.write(.upsert(batch))
        }
        while collection.stats().unindexedRecords > 0 { try await Task.sleep(for: .milliseconds(50)) }

        let clock = ContinuousClock()
        var modes: [Report.Mode] = []
        // Hybrid twice: as served (verbatim phrase first), and by the fused ranks alone.
        let runs: [(label: String, mode: SearchMode, fusion: RankFusion)] = [
            ("semantic", .semantic, RankFusion()), ("lexical", .lexical, RankFusion()), ("hybrid", .hybrid, RankFusion()),
            ("hybrid_ranks_only", .hybrid, RankFusion(phraseFirst: false)),
        ]
        for (label, mode, fusion) in runs {
            var reciprocal = 0.0
            var found = 0
            var elapsed = Duration.zero
            for (query, vector) in zip(chosen, queryVectors) {
                var hits: [RecordView] = []
                elapsed += try clock.measure {
                    hits = try collection.search(mode: mode, vector: vector, text: query.text, k: 10, include: [], fusion: fusion)
                }
                if let rank = hits.firstIndex(where: { $0.id == records[query.record].id }) {
                    reciprocal += 1 / Double(rank + 1)
                    found += 1
                }
            }
            let count = Double(chosen.count)
            modes.append(Report.Mode(
                mode: label, mrr_at_10: reciprocal / count, recall_at_10: Double(found) / count,
                mean_milliseconds: (Double(elapsed.components.seconds) * 1e3 + Double(elapsed.components.attoseconds) * 1e-15) / count))
        }
        return Report(records: records.count, queries: chosen.count, seed: seed, words_per_query: "4-8",
                      shared_windows_skipped: skipped, modes: modes)
    }
}

struct KnownItemError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
