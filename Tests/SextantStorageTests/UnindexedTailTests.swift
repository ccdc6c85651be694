import Foundation
import SextantDatasets
import SextantKernels
import SextantPayload
import SextantStorage
import SextantTestSupport
import Testing

/// Queries over records written but not yet linked into the graph: with the
/// indexer stopped, everything written stays in the unindexed tail.
@Suite struct UnindexedTailTests {
    /// The exact top k (among `candidates`) by brute force over the stored (f16)
    /// form of the vectors, with the C kernels: debug builds of Swift loops are slow.
    private func exactTop(_ query: [Float], _ stored: [[Float]], k: Int, metric: Metric, candidates: [Int]? = nil) -> Set<Int> {
        let kernels = DistanceKernels.selected
        let scored = (candidates ?? Array(stored.indices)).map { index -> (Int, Float) in
            let distance = query.withUnsafeBufferPointer { q in
                stored[index].withUnsafeBufferPointer { v in
                    metric == .l2 ? kernels.l2SquaredFloat(q.baseAddress, v.baseAddress, q.count)
                        : 1 - kernels.dotFloat(q.baseAddress, v.baseAddress, q.count)
                }
            }
            return (index, distance)
        }
        return Set(scored.sorted { $0.1 < $1.1 }.prefix(k).map(\.0))
    }

    private func storedForm(_ vector: [Float], normalize: Bool) -> [Float] {
        var copy = vector
        if normalize { copy.withUnsafeMutableBufferPointer { VectorMath.normalize($0) } }
        return copy.map { HalfConversion.toFloat(HalfConversion.toHalf($0)) }
    }

    /// 8,000 MiniLM records in the tail (twice the size at which queries rank it
    /// by sign code): unfiltered queries keep their recall, filtered ones stay exact.
    /// Also for a collection created without a dimension (as ChromaDB's clients
    /// create them), whose tail codes are sized by its first write.
    @Test(arguments: [384, 0])
    func largeTailRankedBySignCodeKeepsRecall(declaredDimension: Int) async throws {
        let base = try VectorFiles.readFvecs(TestDataset.file("base.fvecs"))
        let queries = try VectorFiles.readFvecs(TestDataset.file("queries.fvecs"))
        let count = 8_000
        let vectors = (0..<count).map { Array(base.row($0)) }
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        try await withEngine(directory) { engine in
            engine.indexer.stop()
            let (collection, _) = try await engine.create(
                CollectionConfiguration(name: "tail", dimension: declaredDimension, metric: .cosine))
            for start in stride(from: 0, to: count, by: 1_000) {
                let records = (start..<start + 1_000).map { index in
                    RecordInput(id: "r\(index)", vector: vectors[index], metadata: ["even": .bool(index % 2 == 0)])
                }
                _ = try await collection.write(.upsert(records))
            }
            #expect(collection.stats().unindexedRecords == count, "nothing may be linked while the indexer is stopped")
            let stored = vectors.map { storedForm($0, normalize: true) }
            var found = 0
            var filteredExact = 0
            let sample = 100
            for number in 0..<sample {
                let query = storedForm(Array(queries.row(number)), normalize: true)
                let truth = exactTop(query, stored, k: 10, metric: .cosine)
                let hits = try collection.query([query], k: 10, include: [.distances])[0]
                #expect(hits.count == 10)
                found += hits.filter { truth.contains(Int($0.id.dropFirst()) ?? -1) }.count

                // Exact: ten even records, none farther than the true tenth (up to rounding of the sums).
                let evenTruth = exactTop(query, stored, k: 10, metric: .cosine, candidates: Array(stride(from: 0, to: count, by: 2)))
                let tenth = evenTruth.map { index in 1 - zip(query, stored[index]).reduce(0) { $0 + $1.0 * $1.1 } }.max() ?? 0
                let filtered = try collection.query(
                    [query], k: 10, filter: .compare(key: "even", op: .eq, value: .bool(true)), include: [.distances])[0]
                let allEven = filtered.allSatisfy { (Int($0.id.dropFirst()) ?? 1) % 2 == 0 }
                if filtered.count == 10 && allEven && filtered.allSatisfy({ ($0.distance ?? 2) <= tenth + 1e-4 }) { filteredExact += 1 }
            }
            let recall = Double(found) / Double(sample * 10)
            #expect(recall >= 0.97, "recall@10 over a tail ranked by sign code: \(recall)")
            #expect(filteredExact == sample, "filtered queries scan the tail exactly")
        }
    }

    /// Sign codes only rank unit vectors faithfully: once a vector of another
    /// length arrives under l2, queries go back to scoring the whole tail exactly.
    @Test func nonUnitVectorsUnderL2KeepTheExactScan() async throws {
        let count = 6_000
        let vectors = randomVectors(count: count, dimensions: 32, seed: 11)
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        try await withEngine(directory) { engine in
            engine.indexer.stop()
            let (collection, _) = try await engine.create(CollectionConfiguration(name: "l2", dimension: 32, metric: .l2))
            for start in stride(from: 0, to: count, by: 1_000) {
                _ = try await collection.write(.upsert((start..<start + 1_000).map { RecordInput(id: "r\($0)", vector: vectors[$0]) }))
            }
            let stored = vectors.map { storedForm($0, normalize: false) }
            for query in randomVectors(count: 20, dimensions: 32, seed: 12) {
                let truth = exactTop(query, stored, k: 10, metric: .l2)
                let hits = try collection.query([query], k: 10, include: [.distances])[0]
                #expect(Set(hits.compactMap { Int($0.id.dropFirst()) }) == truth)
            }
        }
    }

    /// While queries run, a write that would take the tail past the small bound
    /// waits for the indexer; once no query has run for the activity window, the
    /// full bound applies again and the same write is taken at once.
    @Test func queriesKeepTheTailSmallWhileTheyRun() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let engine = try StorageEngine(directory: directory.path, io: .shared, tailLimits: TailLimits(always: 4_096, underReads: 64))
        defer { engine.indexer.stop() }
        engine.indexer.pause()
        let (collection, _) = try await engine.create(CollectionConfiguration(name: "reads-first", dimension: 8))
        let records = makeRecords(2_000, dimensions: 8, seed: 5)
        _ = try await collection.write(.upsert(Array(records[0..<1_000])))
        #expect(collection.stats().unindexedRecords == 1_000, "no query yet: the full bound admits the batch")

        // A reader that keeps querying, so the activity window never lapses however slow the host.
        let probe = try #require(records[0].vector)
        _ = try collection.query([probe], k: 1)
        let reading = Task {
            while !Task.isCancelled {
                _ = try? collection.query([probe], k: 1)
                try? await Task.sleep(for: .milliseconds(10))
            }
        }
        let held = Task { try await collection.write(.upsert(Array(records[1_000..<1_100]))) }
        try await Task.sleep(for: .milliseconds(300))
        #expect(collection.count == 1_000, "under reads, a write past the small bound waits for the indexer")
        engine.indexer.resume()
        _ = try await held.value
        #expect(collection.count == 1_100)
        reading.cancel()
        _ = await reading.value

        engine.indexer.pause()
        try await Task.sleep(for: .milliseconds(StorageLimits.readerActivityWindowMilliseconds + 200))
        let free = Task { try await collection.write(.upsert(Array(records[1_100..<2_000]))) }
        let deadline = ContinuousClock.now + .seconds(10)
        while collection.count < 2_000 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(collection.count == 2_000, "with no reader in the window the full bound applies, indexer paused or not")
        engine.indexer.resume()
        _ = try await free.value
    }
}
