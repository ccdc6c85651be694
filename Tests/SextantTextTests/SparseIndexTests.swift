import Foundation
import SextantTestSupport
import SextantText
import Testing

/// MaxScore over sparse vectors must equal the exhaustive dot product: with
/// skewed dimensions (a few common, many rare, as BM25 terms are), negative
/// values and query weights, IDF scaling, filters, and after replacements and
/// deletes; the stored form reads back the same index and refuses damage.
@Suite struct SparseIndexTests {
    typealias Vector = (indices: [UInt32], values: [Float])

    /// 1-40 entries over 2,000 dimensions drawn with a skew; values in (0, 3],
    /// a tenth of them negative when `negatives`.
    static func vector(_ generator: inout SeededGenerator, negatives: Bool) -> Vector {
        var entries: [UInt32: Float] = [:]
        for _ in 0..<Int.random(in: 1...40, using: &generator) {
            let dimension = UInt32(pow(Double.random(in: 0..<1, using: &generator), 3) * 2_000)
            var value = Float.random(in: 0.01...3, using: &generator)
            if negatives, Int.random(in: 0..<10, using: &generator) == 0 { value = -value }
            entries[dimension] = value
        }
        let indices = entries.keys.sorted()
        return (indices, indices.map { entries[$0] ?? 0 })
    }

    static func dot(_ a: Vector, _ b: Vector, idf: [UInt32: Double]? = nil) -> Double {
        var total = 0.0
        let lookup = Dictionary(uniqueKeysWithValues: zip(b.indices, b.values))
        for (index, value) in zip(a.indices, a.values) {
            guard let other = lookup[index] else { continue }
            total += Double(value) * (idf?[index] ?? 1) * Double(other)
        }
        return total
    }

    /// The exhaustive top k: every document sharing a dimension with the query, by score, ties to the smaller slot.
    static func reference(_ documents: [UInt32: Vector], _ query: Vector, k: Int, bm25: Bool, accept: (UInt32) -> Bool = { _ in true })
        -> [BM25Index.Hit]
    {
        var idf: [UInt32: Double]?
        if bm25 {
            var counts: [UInt32: Int] = [:]
            for vector in documents.values { for index in vector.indices { counts[index, default: 0] += 1 } }
            idf = Dictionary(uniqueKeysWithValues: query.indices.map { index in
                (index, SparseIndex.inverseDocumentFrequency(documents: documents.count, holding: counts[index] ?? 0))
            })
        }
        let queryDimensions = Set(query.indices)
        var hits: [BM25Index.Hit] = []
        for (slot, vector) in documents where accept(slot) && vector.indices.contains(where: queryDimensions.contains) {
            hits.append(BM25Index.Hit(slot: slot, score: dot(query, vector, idf: idf)))
        }
        hits.sort { (a: BM25Index.Hit, b: BM25Index.Hit) -> Bool in a.score > b.score || (a.score == b.score && a.slot < b.slot) }
        return Array(hits.prefix(k))
    }

    static func expectSame(_ found: [BM25Index.Hit], _ expected: [BM25Index.Hit], _ label: String) {
        #expect(found.count == expected.count, "\(label): \(found.count) hits, reference \(expected.count)")
        for (index, (hit, want)) in zip(found, expected).enumerated() {
            #expect(abs(hit.score - want.score) <= 1e-9 * max(1, abs(want.score)), "\(label) #\(index): \(hit.score) vs \(want.score)")
            if abs(hit.score - want.score) > 1e-9 * max(1, abs(want.score)) { return }
        }
        // Slots agree except within ties the float sums may order differently.
        let foundSlots = Set(found.map(\.slot))
        let certain = expected.filter { want in !expected.contains { $0.slot != want.slot && abs($0.score - want.score) < 1e-9 } }
        for want in certain where want.score > (expected.last?.score ?? 0) + 1e-9 {
            #expect(foundSlots.contains(want.slot), "\(label): slot \(want.slot) missing")
        }
    }

    @Test(arguments: [false, true])
    func topKEqualsExhaustiveDotProduct(negatives: Bool) {
        var generator = SeededGenerator(seed: negatives ? 21 : 20)
        var index = SparseIndex()
        var documents: [UInt32: Vector] = [:]
        for slot in 0..<UInt32(3_000) {
            let vector = Self.vector(&generator, negatives: negatives)
            index.set(slot: slot, indices: vector.indices, values: vector.values)
            documents[slot] = vector
        }
        index.compact()
        // Replacements (in place, so appended out of order), deletes, and a slot emptied.
        for _ in 0..<400 {
            let slot = UInt32.random(in: 0..<3_000, using: &generator)
            let vector = Self.vector(&generator, negatives: negatives)
            index.set(slot: slot, indices: vector.indices, values: vector.values)
            documents[slot] = vector
        }
        for slot in stride(from: UInt32(5), to: 3_000, by: 17) {
            index.remove(slot: slot)
            documents[slot] = nil
        }
        index.set(slot: 7, indices: [], values: [])
        documents[7] = nil
        index.compact()
        #expect(index.documentCount == documents.count)
        for round in 0..<60 {
            let query = Self.vector(&generator, negatives: negatives)
            for k in [1, 10, 100] {
                let bm25 = round % 2 == 0
                let found = index.searchCompacted(indices: query.indices, values: query.values, k: k,
                                                  idfDocuments: bm25 ? documents.count : nil)
                Self.expectSame(found, Self.reference(documents, query, k: k, bm25: bm25), "query \(round) k \(k)")
            }
            let accept: (UInt32) -> Bool = { $0 % 3 == 1 }
            let filtered = index.searchCompacted(indices: query.indices, values: query.values, k: 10, accept: accept)
            #expect(filtered.allSatisfy { accept($0.slot) })
            Self.expectSame(filtered, Self.reference(documents, query, k: 10, bm25: false, accept: accept), "filtered query \(round)")
        }
    }

    @Test func idfIsChromasFormula() {
        // ln(1 + (n − n_t + 0.5)/(n_t + 0.5)); n_t past n is clamped to n.
        #expect(abs(SparseIndex.inverseDocumentFrequency(documents: 100, holding: 10) - log(1 + 90.5 / 10.5)) < 1e-12)
        #expect(SparseIndex.inverseDocumentFrequency(documents: 5, holding: 9) == log(1 + 0.5 / 5.5))
    }

    @Test func storedFormReadsBackTheSameIndex() throws {
        var generator = SeededGenerator(seed: 30)
        var index = SparseIndex()
        for slot in 0..<UInt32(500) {
            let vector = Self.vector(&generator, negatives: true)
            index.set(slot: slot, indices: vector.indices, values: vector.values)
        }
        for slot in stride(from: UInt32(0), to: 500, by: 7) { index.remove(slot: slot) }
        let bytes = index.serialized()
        let loaded = try SparseIndex(serialized: bytes)
        #expect(loaded.documentCount == index.documentCount)
        #expect(loaded.entryCount == index.entryCount)
        for _ in 0..<20 {
            let query = Self.vector(&generator, negatives: false)
            #expect(loaded.searchCompacted(indices: query.indices, values: query.values, k: 10, idfDocuments: 500)
                == index.searchCompacted(indices: query.indices, values: query.values, k: 10, idfDocuments: 500))
        }
        // The loaded index keeps working: a replaced slot leaves its old dimensions.
        var changed = loaded
        changed.set(slot: 1, indices: [1_999_999], values: [2])
        changed.compact()
        #expect(changed.searchCompacted(indices: [1_999_999], values: [1], k: 5) == [BM25Index.Hit(slot: 1, score: 2)])
        #expect(changed.documentFrequency(1_999_999) == 1)

        // Truncation, another version, a slot out of order: errors, not crashes.
        #expect(throws: BM25Index.FormatError.self) { try SparseIndex(serialized: Array(bytes.dropLast(3))) }
        var version = bytes
        version[7] = 9
        #expect(throws: BM25Index.FormatError.self) { try SparseIndex(serialized: version) }
        for _ in 0..<200 {
            var damaged = bytes
            let position = Int.random(in: 8..<damaged.count, using: &generator)
            damaged[position] ^= UInt8.random(in: 1...255, using: &generator)
            _ = try? SparseIndex(serialized: damaged)
        }
    }
}
