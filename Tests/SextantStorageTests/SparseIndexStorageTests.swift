import Foundation
import SextantPayload
import SextantStorage
import SextantTestSupport
import SextantText
import Testing

/// A collection's sparse indexes: exact against a dot-product reference over
/// the live records after every kind of write, BM25 keys scaled by IDF over
/// the live records, durable through the checkpoint file and WAL replay, and
/// refused clearly when the key has no index or a vector is malformed.
@Suite struct SparseIndexStorageTests {
    /// Records with a sparse vector under "terms" (most of them) over 300 dimensions, and a lot number.
    static func records(_ count: Int, seed: UInt64, prefix: String = "s") -> [RecordInput] {
        var generator = SeededGenerator(seed: seed)
        let vectors = randomVectors(count: count, dimensions: 8, seed: seed)
        return (0..<count).map { index in
            var metadata: Metadata = ["lot": .int(Int64(index % 4))]
            if index % 10 != 9 {
                let indices = Array(Set((0..<Int.random(in: 1...12, using: &generator)).map { _ in
                    UInt32(pow(Double.random(in: 0..<1, using: &generator), 2) * 300)
                })).sorted()
                metadata["terms"] = .sparseVector(SparseVector(indices: indices, values: indices.map { _ in Float.random(in: 0.1...2, using: &generator) }))
            }
            return RecordInput(id: "\(prefix)\(index)", vector: vectors[index], document: "doc \(index)", metadata: metadata)
        }
    }

    /// Dot products over the live records holding a vector that shares a dimension with the query.
    static func reference(_ collection: Collection, _ query: SparseVector, k: Int, bm25: Bool, lot: Int64? = nil) throws -> [(String, Double)] {
        let live = try collection.get(include: [.metadatas])
        var holding: [UInt32: Int] = [:]
        var vectors: [(String, SparseVector, MetadataValue?)] = []
        for record in live {
            guard case .sparseVector(let vector)? = record.metadata?["terms"] else { continue }
            vectors.append((record.id, vector, record.metadata?["lot"]))
            for index in vector.indices { holding[index, default: 0] += 1 }
        }
        var weighted = query
        if bm25 {
            weighted.values = zip(query.indices, query.values).map { index, value in
                Float(Double(value) * SparseIndex.inverseDocumentFrequency(documents: live.count, holding: holding[index] ?? 0))
            }
        }
        let dimensions = Set(query.indices)
        return vectors.filter { id, vector, value in
            (lot == nil || value == .int(lot ?? 0)) && vector.indices.contains(where: dimensions.contains)
        }.map { id, vector, _ -> (String, Double) in
            // The index multiplies in double; the IDF-scaled query here went through float.
            var total = 0.0
            let lookup = Dictionary(uniqueKeysWithValues: zip(vector.indices, vector.values))
            for (index, value) in zip(query.indices, query.values) {
                guard let other = lookup[index] else { continue }
                let scale = bm25 ? SparseIndex.inverseDocumentFrequency(documents: live.count, holding: holding[index] ?? 0) : 1
                total += Double(value) * scale * Double(other)
            }
            return (id, total)
        }.sorted { $0.1 > $1.1 }.prefix(k).map { $0 }
    }

    static func expectMatches(_ collection: Collection, _ query: SparseVector, bm25: Bool, lot: Int64? = nil, k: Int = 10) throws {
        let filter: WhereFilter? = lot.map { .compare(key: "lot", op: .eq, value: .int($0)) }
        let found = try collection.sparseSearch(key: "terms", query: query, k: k, filter: filter)
        let expected = try reference(collection, query, k: k, bm25: bm25, lot: lot)
        #expect(found.count == expected.count)
        for (hit, want) in zip(found, expected) {
            #expect(abs((hit.score ?? .nan) - want.1) < 1e-9 * max(1, abs(want.1)), "\(hit.id) \(hit.score ?? .nan) vs \(want.0) \(want.1)")
        }
    }

    static let queries = [
        SparseVector(indices: [0, 1, 2], values: [1, 0.5, 0.25]),
        SparseVector(indices: [3, 50, 120, 299], values: [2, 1, 1, 3]),
        SparseVector(indices: [7], values: [1]),
        SparseVector(indices: [100_000], values: [1]),
    ]

    @Test(arguments: [false, true])
    func sparseSearchIsExactThroughEveryKindOfWrite(bm25: Bool) async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        try await withEngine(directory) { engine in
            let (collection, _) = try await engine.create(CollectionConfiguration(
                name: "sparse", dimension: 8, metric: .l2, sparseIndexes: [SparseIndexSettings(key: "terms", bm25: bm25)]))
            let records = Self.records(400, seed: 1)
            try await collection.write(.add(records))
            for query in Self.queries { try Self.expectMatches(collection, query, bm25: bm25) }
            try Self.expectMatches(collection, Self.queries[1], bm25: bm25, lot: 2)
            // In place (same vector, new metadata), moved (new vector), vector removed, deleted.
            let replacements = Self.records(60, seed: 2)
            var updates = (0..<30).map { RecordInput(id: "s\($0)", vector: records[$0].vector, document: "x", metadata: replacements[$0].metadata) }
            updates += (30..<60).map { RecordInput(id: "s\($0)", vector: replacements[$0].vector, document: "y", metadata: replacements[$0].metadata) }
            try await collection.write(.upsert(updates))
            try await collection.write(.update([RecordInput(id: "s70", metadata: ["lot": .int(0)])], ignoreMissing: false))
            try await collection.write(.delete(ids: (80..<120).map { "s\($0)" }))
            for query in Self.queries { try Self.expectMatches(collection, query, bm25: bm25) }
            try Self.expectMatches(collection, Self.queries[0], bm25: bm25, lot: 1)
            #expect(try collection.sparseSearch(key: "terms", query: Self.queries[3], k: 5).isEmpty, "no record holds the dimension")
        }
    }

    @Test func survivesCheckpointAndReplay() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let settings = [SparseIndexSettings(key: "terms", bm25: true, sourceKey: "#document", embeddingFunction: #"{"name":"chroma_bm25"}"#),
                        SparseIndexSettings(key: "other")]
        let before: [[RecordView]] = try await withEngine(directory) { engine in
            let (collection, _) = try await engine.create(
                CollectionConfiguration(name: "sparse", dimension: 8, metric: .l2, sparseIndexes: settings))
            try await collection.write(.add(Self.records(300, seed: 3)))
            try await collection.checkpoint()
            let generation = try #require(generationFolder(collection.directory))
            #expect(FileManager.default.fileExists(atPath: generation + "/sparse.idx"), "the checkpoint wrote the sparse indexes")
            try await collection.write(.upsert(Self.records(50, seed: 4)))
            try await collection.write(.delete(ids: ["s200", "s201"]))
            return try Self.queries.map { try collection.sparseSearch(key: "terms", query: $0, k: 10) }
        }
        try await withEngine(directory) { engine in
            let collection = try #require(engine.collection(named: "sparse"))
            #expect(collection.configuration.sparseIndexes == settings)
            let after = try Self.queries.map { try collection.sparseSearch(key: "terms", query: $0, k: 10) }
            #expect(after == before)
            for query in Self.queries { try Self.expectMatches(collection, query, bm25: true) }
        }
    }

    @Test func badRequestsAreRefused() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        try await withEngine(directory) { engine in
            let (collection, _) = try await engine.create(CollectionConfiguration(
                name: "sparse", dimension: 8, metric: .l2, sparseIndexes: [SparseIndexSettings(key: "terms")]))
            try await collection.write(.add(Self.records(10, seed: 5)))
            do {
                _ = try collection.sparseSearch(key: "missing", query: Self.queries[0], k: 5)
                Issue.record("searched a key without an index")
            } catch let error as StorageError {
                guard case .failedPrecondition(let message) = error else { Issue.record("wrong error \(error)"); return }
                #expect(message.contains("terms"), "names the declared keys")
            }
            #expect(throws: StorageError.self) {
                try collection.sparseSearch(key: "terms", query: SparseVector(indices: [3, 1], values: [1, 1]), k: 5)
            }
            #expect(throws: StorageError.self) { try collection.sparseSearch(key: "terms", query: Self.queries[0], k: 0) }
            // A malformed vector in a write refuses the whole batch.
            let bad = RecordInput(id: "bad", vector: [Float](repeating: 0, count: 8),
                                  metadata: ["terms": .sparseVector(SparseVector(indices: [1, 1], values: [1, 2]))])
            await #expect(throws: StorageError.self) { try await collection.write(.add([bad] + Self.records(3, seed: 6, prefix: "ok"))) }
            #expect(collection.count == 10)
            // Declarations are checked at create.
            await #expect(throws: StorageError.self) {
                _ = try await engine.create(CollectionConfiguration(
                    name: "twice", dimension: 8, sparseIndexes: [SparseIndexSettings(key: "a"), SparseIndexSettings(key: "a")]))
            }
            await #expect(throws: StorageError.self) {
                _ = try await engine.create(CollectionConfiguration(name: "hash", dimension: 8, sparseIndexes: [SparseIndexSettings(key: "#x")]))
            }
        }
    }
}
