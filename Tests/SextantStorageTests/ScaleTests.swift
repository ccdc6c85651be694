import Foundation
import SextantDatasets
import SextantKernels
import SextantPayload
import SextantStorage
import SextantTestSupport
import Testing

/// Collections that grow past their reservation, quantized collections, and
/// the manifest's format version.
@Suite struct ScaleTests {
    @Test func aCollectionGrowsPastItsReservationWithoutARefusedWrite() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        try await withEngine(directory) { engine in
            // A reservation of 64 slots; 3,000 records arrive in batches bigger than it.
            let (collection, _) = try await engine.create(CollectionConfiguration(name: "small", dimension: 8, capacity: 64))
            #expect(collection.reservedSlots == 64)
            let records = makeRecords(3_000)
            for start in stride(from: 0, to: records.count, by: 500) {
                try await collection.write(.upsert(Array(records[start..<(start + 500)])))
            }
            #expect(collection.count == 3_000)
            #expect(collection.reservedSlots >= 3_000, "grown at checkpoints: \(collection.reservedSlots)")
            try await waitIndexed(collection)
            let hits = try collection.query([records[1_234].vector ?? []], k: 1)
            #expect(hits.first?.first?.id == "r1234")
        }
        // Reopened: the grown reservation is derived again from what the files hold.
        try await withEngine(directory) { engine in
            let collection = try #require(engine.collection(named: "small"))
            #expect(collection.count == 3_000)
            #expect(collection.reservedSlots >= 3_000)
            try await collection.write(.upsert(makeRecords(100, seed: 9, prefix: "late")))
            #expect(collection.count == 3_100)
        }
    }

    /// A checkpoint copies unchanged bytes from the previous generation's files:
    /// every page the graph changed since must come from memory instead, or the
    /// links and node entries written between two checkpoints are lost.
    @Test(arguments: [Quantization.none, .int8])
    func graphChangesBetweenCheckpointsSurviveTheNext(quantization: Quantization) async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let records = makeRecords(2_400, dimensions: 8, seed: 41)
        try await withEngine(directory) { engine in
            let (collection, _) = try await engine.create(
                CollectionConfiguration(name: "steps", dimension: 8, quantization: quantization))
            for round in 0..<3 {
                try await collection.write(.upsert(Array(records[(round * 800)..<((round + 1) * 800)])))
                if round == 2 { try await collection.write(.delete(ids: (0..<100).map { "r\($0)" })) }
                try await waitIndexed(collection)
                try await collection.checkpoint()
                #expect(collection.indexInvariantViolations() == [], "after checkpoint \(round + 1)")
                #expect(collection.stats().indexedRecords == collection.count)
            }
        }
        try await withEngine(directory) { engine in
            let collection = try #require(engine.collection(named: "steps"))
            #expect(collection.indexInvariantViolations() == [])
            #expect(try collection.query([records[2_000].vector ?? []], k: 1).first?.first?.id == "r2000")
        }
    }

    @Test func quantizedCollectionsRankLikeFloat16OnesAndSurviveAReopen() async throws {
        let base = try VectorFiles.readFvecs(TestDataset.file("base.fvecs"))
        let queries = try VectorFiles.readFvecs(TestDataset.file("queries.fvecs"), expectedDimensions: 384)
        let count = 6_000
        let records = (0..<count).map { RecordInput(id: "d\($0)", vector: Array(base.row($0)), document: "record \($0)") }
        let probes = (0..<100).map { Array(queries.row($0)) }
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var answers: [Quantization: [[String]]] = [:]
        try await withEngine(directory) { engine in
            for quantization in [Quantization.none, .int8] {
                let (collection, _) = try await engine.create(CollectionConfiguration(
                    name: "q-\(quantization.rawValue)", dimension: 384, quantization: quantization))
                for start in stride(from: 0, to: count, by: 1_000) {
                    try await collection.write(.upsert(Array(records[start..<(start + 1_000)])))
                }
                try await waitIndexed(collection)
                // The memory accounting by part, as `sextant stats` reports it.
                let stats = collection.stats()
                #expect(stats.capacitySlots >= count && stats.heapBytes > 0)
                #expect(stats.vectorBytes == count * 768)
                if quantization == .int8 {
                    #expect(stats.codeBytes == count * 384)
                    #expect(stats.residentSearchBytes == stats.graphBytes + stats.codeBytes)
                } else {
                    #expect(stats.codeBytes == 0)
                    #expect(stats.residentSearchBytes == stats.graphBytes + stats.vectorBytes)
                }
                answers[quantization] = try collection.query(probes, k: 10, include: []).map { $0.map(\.id) }
                try await collection.checkpoint()
            }
        }
        // Exact answers by float64 brute force over the same 6,000 records.
        let exact = probes.map { probe -> Set<String> in
            let scored = (0..<count).map { row -> (Double, Int) in
                let vector = base.row(row)
                var dot = 0.0, norm = 0.0, queryNorm = 0.0
                for (x, q) in zip(vector, probe) {
                    dot += Double(x) * Double(q)
                    norm += Double(x) * Double(x)
                    queryNorm += Double(q) * Double(q)
                }
                return (1 - dot / (norm * queryNorm).squareRoot(), row)
            }
            return Set(scored.sorted { $0.0 < $1.0 }.prefix(10).map { "d\($0.1)" })
        }
        func recall(_ found: [[String]]) -> Double {
            Double(zip(found, exact).reduce(0) { $0 + Set($1.0).intersection($1.1).count }) / Double(exact.count * 10)
        }
        let float16 = recall(answers[.none] ?? [])
        let int8 = recall(answers[.int8] ?? [])
        #expect(float16 >= 0.95)
        #expect(int8 >= float16 - 0.02, "int8 recall \(int8) against float16 \(float16)")
        try await withEngine(directory) { engine in
            let collection = try #require(engine.collection(named: "q-int8"))
            #expect(collection.configuration.quantization == .int8)
            #expect(FileManager.default.fileExists(
                atPath: collection.directory + "/" + (try FileManager.default.contentsOfDirectory(atPath: collection.directory)
                    .first { $0.hasPrefix("gen-") } ?? "") + "/codes.bin"))
            let reopened = try collection.query(probes, k: 10, include: []).map { $0.map(\.id) }
            #expect(reopened == answers[.int8], "a reopened quantized collection answers as before")
        }
    }

    /// Rewrites a collection's manifest body with `edit` (keeping its framing and checksum right).
    func editManifest(_ path: String, _ edit: (inout [String: Any]) -> Void) throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        var object = try #require(try JSONSerialization.jsonObject(with: Data(bytes[8...])) as? [String: Any])
        edit(&object)
        let body = [UInt8](try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
        var out = Array("SXM1".utf8)
        withUnsafeBytes(of: CRC32C.checksum(body).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: body)
        try Data(out).write(to: URL(fileURLWithPath: path))
    }

    @Test func aVersionOneManifestOpensAsAnUnquantizedCollection() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        var manifestPath = ""
        try await withEngine(directory) { engine in
            let (collection, _) = try await engine.create(CollectionConfiguration(name: "old", dimension: 8, quantization: .none))
            try await collection.write(.upsert(makeRecords(200)))
            try await collection.close()
            manifestPath = collection.directory + "/MANIFEST"
        }
        // What a build before quantization wrote: version 1, no quantization key.
        try editManifest(manifestPath) { object in
            object["formatVersion"] = 1
            var configuration = object["configuration"] as? [String: Any] ?? [:]
            configuration["quantization"] = nil
            object["configuration"] = configuration
        }
        try await withEngine(directory) { engine in
            let collection = try #require(engine.collection(named: "old"))
            #expect(collection.configuration.quantization == .none)
            #expect(collection.count == 200)
        }
        // A manifest from a newer format is refused by name, never misread.
        try editManifest(manifestPath) { $0["formatVersion"] = 3 }
        #expect(throws: StorageError.self) { _ = try StorageEngine(directory: directory.path) }
    }
}
