import Foundation
import SextantPayload
import SextantStorage
import SextantTestSupport
import SextantText
import Testing

/// A collection's own BM25 index: exact against a reference over the live
/// documents after every kind of write, durable through checkpoint files and
/// WAL replay, enabled on an existing collection, refused when damaged.
@Suite struct TextIndexTests {
    static let vocabulary = [
        "tender", "road", "bridge", "school", "hospital", "cleaning", "software", "licence", "repair", "water",
        "supply", "electric", "vehicles", "catering", "security", "consulting", "audit", "printing", "furniture", "fuel",
    ]

    /// Documents of 3-30 words drawn with a skew, so terms differ in frequency.
    static func records(_ count: Int, seed: UInt64, prefix: String = "t") -> [RecordInput] {
        var generator = SeededGenerator(seed: seed)
        let vectors = randomVectors(count: count, dimensions: 8, seed: seed)
        return (0..<count).map { index in
            let words = (0..<Int.random(in: 3...30, using: &generator)).map { _ in
                vocabulary[min(Int(pow(Double.random(in: 0..<1, using: &generator), 2) * Double(vocabulary.count)), vocabulary.count - 1)]
            }
            return RecordInput(
                id: "\(prefix)\(index)", vector: vectors[index], document: words.joined(separator: " "),
                metadata: ["lot": .int(Int64(index % 4))])
        }
    }

    /// BM25 (k1 1.2, b 0.75) over the collection's live documents, by brute force.
    static func reference(_ collection: Collection, _ query: String, k: Int, lot: Int64? = nil) throws -> [(String, Double)] {
        let tokenizer = Tokenizer()
        let all = try collection.get(include: [.documents, .metadatas])
        let documents = all.map { ($0.id, tokenizer.tokens($0.document ?? ""), $0.metadata?["lot"]) }.filter { !$0.1.isEmpty }
        let n = Double(documents.count)
        let averageLength = Double(documents.reduce(0) { $0 + $1.1.count }) / n
        var scores: [(String, Double)] = []
        let terms = Array(Set(tokenizer.tokens(query)))
        for (id, tokens, value) in documents {
            if let lot, value != .int(lot) { continue }
            var score = 0.0
            for term in terms {
                let frequency = Double(tokens.filter { $0 == term }.count)
                guard frequency > 0 else { continue }
                let nt = Double(documents.filter { $0.1.contains(term) }.count)
                let idf = log(1 + (n - nt + 0.5) / (nt + 0.5))
                score += idf * frequency * 2.2 / (frequency + 1.2 * (0.25 + 0.75 * Double(tokens.count) / averageLength))
            }
            if score > 0 { scores.append((id, score)) }
        }
        return Array(scores.sorted { $0.1 > $1.1 }.prefix(k))
    }

    /// Same scores in the same order; ids must agree wherever scores do not tie.
    static func expectMatches(_ collection: Collection, _ query: String, k: Int = 10, lot: Int64? = nil) throws {
        let filter: WhereFilter? = lot.map { .compare(key: "lot", op: .eq, value: .int($0)) }
        let found = try collection.search(mode: .lexical, vector: nil, text: query, k: k, filter: filter)
        let expected = try reference(collection, query, k: k, lot: lot)
        #expect(found.count == expected.count, "\(query): \(found.count) hits, reference \(expected.count)")
        for (index, (hit, want)) in zip(found, expected).enumerated() {
            let score = try #require(hit.score)
            #expect(abs(score - want.1) < 1e-9 * max(1, want.1), "\(query) #\(index): \(score) vs \(want.1)")
            let tied = expected.filter { abs($0.1 - want.1) < 1e-9 * max(1, want.1) }.map(\.0)
            #expect(tied.contains(hit.id), "\(query) #\(index): \(hit.id) not among \(tied)")
        }
    }

    static let queries = ["road bridge", "school cleaning", "software licence audit", "fuel", "water supply repair", "nothing here"]

    @Test func lexicalSearchIsExactThroughEveryKindOfWrite() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        try await withEngine(directory) { engine in
            let (collection, _) = try await engine.create(
                CollectionConfiguration(name: "tenders", dimension: 8, metric: .l2, textIndex: TextIndexSettings()))
            let records = Self.records(300, seed: 7)
            try await collection.write(.add(records))
            for query in Self.queries { try Self.expectMatches(collection, query) }
            try Self.expectMatches(collection, "road bridge", lot: 2)

            // Replaced in place (same vector, new document), moved to a new slot
            // (new vector), documents removed, records deleted: all visible at once.
            let replacements = Self.records(40, seed: 8)
            var updates = (0..<20).map { RecordInput(id: "t\($0)", vector: records[$0].vector, document: replacements[$0].document) }
            updates += (20..<40).map { RecordInput(id: "t\($0)", vector: replacements[$0].vector, document: replacements[$0].document) }
            try await collection.write(.upsert(updates))
            try await collection.write(.update([RecordInput(id: "t50", document: "")], ignoreMissing: false))
            try await collection.write(.delete(ids: (60..<90).map { "t\($0)" }))
            try await collection.write(.deleteWhere(.compare(key: "lot", op: .eq, value: .int(3)), nil))
            for query in Self.queries { try Self.expectMatches(collection, query) }
            try Self.expectMatches(collection, "security catering", lot: 1)

            // Hybrid: reciprocal rank fusion (k 60) of the semantic top 50 and
            // the lexical top 100; records holding "road bridge" verbatim first.
            for query in ["road bridge", "fuel"] {
                let hybrid = try collection.search(mode: .hybrid, vector: records[100].vector, text: query, k: 5)
                let semantic = try collection.search(mode: .semantic, vector: records[100].vector, text: nil, k: 50)
                let lexical = try collection.search(mode: .lexical, vector: nil, text: query, k: 100)
                var fused: [String: Double] = [:]
                for (rank, hit) in semantic.enumerated() { fused[hit.id, default: 0] += 1 / (60 + Double(rank + 1)) }
                for (rank, hit) in lexical.enumerated() { fused[hit.id, default: 0] += 1 / (60 + Double(rank + 1)) }
                if query.contains(" ") {
                    let documents = Dictionary(uniqueKeysWithValues: try collection.get(ids: Array(fused.keys)).map { ($0.id, $0.document ?? "") })
                    for (id, document) in documents where (" " + document + " ").contains(" " + query + " ") { fused[id]? += 2 / 61.0 }
                }
                let expected = fused.sorted { $0.value > $1.value }.prefix(5)
                #expect(hybrid.count == 5)
                for (hit, want) in zip(hybrid, expected) {
                    #expect(abs((hit.score ?? 0) - want.value) < 1e-12, "\(query): \(hit.id) \(hit.score ?? 0) vs \(want.key) \(want.value)")
                    #expect(fused[hit.id].map { abs($0 - (hit.score ?? 0)) < 1e-12 } == true)
                }
                #expect(hybrid.first?.distance != nil || !semantic.contains { $0.id == hybrid.first?.id })
            }
        }
    }

    @Test func survivesCheckpointAndReplay() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let before: [[RecordView]] = try await withEngine(directory) { engine in
            let (collection, _) = try await engine.create(
                CollectionConfiguration(name: "tenders", dimension: 8, metric: .l2, textIndex: TextIndexSettings(k1: 1.5, b: 0.6)))
            try await collection.write(.add(Self.records(200, seed: 3)))
            try await collection.checkpoint()
            let generation = try #require(generationFolder(collection.directory))
            #expect(FileManager.default.fileExists(atPath: generation + "/text.bm25"), "the checkpoint wrote the text index")
            // After the checkpoint: only in the WAL. The engine is dropped without a close.
            try await collection.write(.upsert(Self.records(50, seed: 4)))
            try await collection.write(.delete(ids: ["t150", "t151"]))
            return try Self.queries.map { try collection.search(mode: .lexical, vector: nil, text: $0, k: 10) }
        }
        try await withEngine(directory) { engine in
            let collection = try #require(engine.collection(named: "tenders"))
            #expect(collection.configuration.textIndex == TextIndexSettings(k1: 1.5, b: 0.6))
            let after = try Self.queries.map { try collection.search(mode: .lexical, vector: nil, text: $0, k: 10) }
            #expect(after == before)
        }
    }

    @Test func enabledOnAnExistingCollectionAndTurnedOff() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        try await withEngine(directory) { engine in
            let (collection, _) = try await engine.create(CollectionConfiguration(name: "plain", dimension: 8, metric: .l2))
            try await collection.write(.add(Self.records(150, seed: 5)))
            #expect(throws: StorageError.self) { try collection.search(mode: .lexical, vector: nil, text: "road", k: 5) }
            try await collection.setTextIndex(TextIndexSettings())
            try Self.expectMatches(collection, "road bridge")
        }
        // The enabling change is in the WAL only: replay builds the index from the records.
        try await withEngine(directory) { engine in
            let collection = try #require(engine.collection(named: "plain"))
            try Self.expectMatches(collection, "road bridge")
            try await collection.write(.add(Self.records(20, seed: 6, prefix: "late")))
            try Self.expectMatches(collection, "school cleaning")
            try await collection.setTextIndex(nil)
            do {
                _ = try collection.search(mode: .lexical, vector: nil, text: "road", k: 5)
                Issue.record("searched words without a text index")
            } catch let error as StorageError {
                guard case .failedPrecondition = error else { Issue.record("wrong error \(error)"); return }
            }
            try await collection.checkpoint()
            #expect(!FileManager.default.fileExists(atPath: try #require(generationFolder(collection.directory)) + "/text.bm25"))
        }
        try await withEngine(directory) { engine in
            #expect(engine.collection(named: "plain")?.configuration.textIndex == nil)
        }
    }

    @Test func builtBesideWritesThatKeepComing() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        try await withEngine(directory) { engine in
            let (collection, _) = try await engine.create(CollectionConfiguration(name: "busy", dimension: 8, metric: .l2))
            try await collection.write(.add(Self.records(4_000, seed: 11)))
            let replacements = Self.records(4_000, seed: 12)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    // Rewrites, new records and deletes while the index is built from the records.
                    for round in 0..<40 {
                        let start = round * 50
                        try await collection.write(.upsert(Array(replacements[start..<start + 50])))
                        try await collection.write(.add(Self.records(10, seed: UInt64(100 + round), prefix: "new\(round)-")))
                        try await collection.write(.delete(ids: (0..<5).map { "t\(3_000 + round * 5 + $0)" }))
                    }
                }
                group.addTask { try await collection.setTextIndex(TextIndexSettings()) }
                try await group.waitForAll()
            }
            for query in Self.queries { try Self.expectMatches(collection, query) }
            await #expect(throws: Never.self) { try await collection.setTextIndex(TextIndexSettings()) }
        }
    }

    @Test func damagedTextIndexFileFailsOpen() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let path: String = try await withEngine(directory) { engine in
            let (collection, _) = try await engine.create(
                CollectionConfiguration(name: "tenders", dimension: 8, metric: .l2, textIndex: TextIndexSettings()))
            try await collection.write(.add(Self.records(100, seed: 9)))
            try await collection.checkpoint()
            return try #require(generationFolder(collection.directory)) + "/text.bm25"
        }
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        try handle.seek(toOffset: 40)
        handle.write(Data([0xFF, 0xEE]))
        try handle.close()
        do {
            _ = try StorageEngine(directory: directory.path)
            Issue.record("opened a collection with a damaged text index")
        } catch let error as StorageError {
            guard case .corrupted(let message) = error else { Issue.record("wrong error \(error)"); return }
            #expect(message.contains("text.bm25"))
        }
    }

    @Test func badSearchesAreRefused() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        try await withEngine(directory) { engine in
            let (collection, _) = try await engine.create(
                CollectionConfiguration(name: "tenders", dimension: 8, metric: .l2, textIndex: TextIndexSettings()))
            try await collection.write(.add(Self.records(10, seed: 1)))
            #expect(throws: StorageError.self) { try collection.search(mode: .lexical, vector: nil, text: nil, k: 5) }
            #expect(throws: StorageError.self) { try collection.search(mode: .hybrid, vector: nil, text: "road", k: 5) }
            #expect(throws: StorageError.self) { try collection.search(mode: .lexical, vector: nil, text: "road", k: 0) }
            #expect(throws: StorageError.self) {
                try collection.search(mode: .lexical, vector: nil, text: String(repeating: "a ", count: 20_000), k: 5)
            }
            #expect(throws: StorageError.self) {
                try collection.search(mode: .hybrid, vector: [Float](repeating: 0, count: 8), text: "road", k: 5,
                                      fusion: RankFusion(semanticWeight: 0, lexicalWeight: 0))
            }
            await #expect(throws: StorageError.self) { try await collection.setTextIndex(TextIndexSettings(k1: -1)) }
            #expect(try collection.search(mode: .lexical, vector: nil, text: "the of and", k: 5).isEmpty, "stop words only")
        }
    }
}

/// The collection's current generation folder (gen-…).
func generationFolder(_ directory: String) -> String? {
    (try? FileManager.default.contentsOfDirectory(atPath: directory))?.filter { $0.hasPrefix("gen-") }.sorted().last
        .map { directory + "/" + $0 }
}
