import Foundation
import SextantDatasets
import SextantPayload
import SextantStorage
import SextantSupport

/// `sextant bench filtered`: filtered search over one collection of N records
/// with an indexed metadata field of known selectivity. Each record carries
/// `draw`, a uniform integer in 0..<1,000,000 from a hash of its row, so
/// `draw < 500000` matches 50%, `< 50000` 5%, `< 5000` 0.5% and `< 500`
/// 0.05%, independently of the vectors. For each selectivity: recall@10
/// against the exact filtered top 10 (brute force over the float32 base
/// vectors, by inner product: the scaled sets are unit vectors under cosine),
/// and single-thread p50/p99 latency, with the unfiltered p50 measured in the
/// same rounds (interleaved, so machine noise hits both alike). Each record
/// also carries `buyer`, one of 50 names (skewed: buyer k holds a share
/// proportional to 1/(k+1)), indexed, for the facet counts the page asks for:
/// over the whole collection and within the 5% filter.
public struct FilteredBenchmark {
    public struct Configuration: Sendable {
        public var base: String
        public var queries: String
        public var records: Int
        public var queryCount = 200
        public var rounds = 3
        public var workDirectory = "/tmp"
        public var indexed = true
        /// The graph walk's breadth for every query (nil: the collection's default).
        public var ef: Int?

        public init(base: String, queries: String, records: Int) {
            self.base = base
            self.queries = queries
            self.records = records
        }
    }

    public struct Row: Codable, Sendable {
        public var selectivity: Double
        public var matching_records: Int
        public var recall_at_10: Double
        public var p50_milliseconds: Double
        public var p99_milliseconds: Double
        public var p50_over_unfiltered: Double
    }

    public struct FacetRow: Codable, Sendable {
        public var filter: String
        public var matched: Int
        public var p50_milliseconds: Double
        public var p99_milliseconds: Double
    }

    public struct Result: Codable, Sendable {
        public var records: Int
        public var queries: Int
        public var indexed_field: Bool
        public var ef: Int?
        public var load_seconds: Double
        public var unfiltered_p50_milliseconds: Double
        public var unfiltered_p99_milliseconds: Double
        public var unfiltered_recall_at_10: Double
        public var rows: [Row]
        public var facets: [FacetRow]
    }

    static let thresholds: [(selectivity: Double, below: Int64)] = [(0.5, 500_000), (0.05, 50_000), (0.005, 5_000), (0.0005, 500)]

    /// A uniform draw in 0..<1,000,000 from the row number (splitmix64).
    static func draw(_ row: Int) -> Int64 {
        var z = UInt64(row) &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Int64(z % 1_000_000)
    }

    /// One of 50 buyers, skewed like a real feed's (Zipf with exponent 1), from the row number.
    static func buyer(_ row: Int) -> String {
        let harmonic = (1...50).reduce(0.0) { $0 + 1 / Double($1) }
        var target = Double(draw(row &* 7 &+ 3)) / 1_000_000 * harmonic
        for k in 1...50 {
            target -= 1 / Double(k)
            if target <= 0 { return "buyer-\(k)" }
        }
        return "buyer-50"
    }

    let configuration: Configuration
    public init(configuration: Configuration) { self.configuration = configuration }

    public func run(progress: @escaping @Sendable (String) -> Void) async throws -> Result {
        let reader = try FvecsReader(path: configuration.base)
        let records = min(configuration.records, reader.rows)
        let dimensions = reader.dimensions
        let queryReader = try FvecsReader(path: configuration.queries)
        let queryCount = min(configuration.queryCount, queryReader.rows)
        let queries = try (0..<queryCount).map { try queryReader.row($0) }
        var base = [Float](repeating: 0, count: records * dimensions)
        try base.withUnsafeMutableBufferPointer { (buffer) throws in
            guard let pointer = buffer.baseAddress else { return }
            try reader.read(0, count: records, into: pointer)
        }
        let draws = (0..<records).map(Self.draw)

        let root = configuration.workDirectory + "/sextant-bench-filtered-\(getpid())"
        try? FileManager.default.removeItem(atPath: root)
        defer { try? FileManager.default.removeItem(atPath: root) }
        // Unindexed means unindexed: no automatic index either, however many filtered queries run.
        let engine = try StorageEngine(directory: root, indexerThreads: max(1, ProcessInfo.processInfo.activeProcessorCount),
                                       automaticIndexRecords: configuration.indexed ? StorageLimits.automaticPayloadIndexRecords : 0)
        let (collection, _) = try await engine.create(CollectionConfiguration(
            name: "filtered", dimension: dimensions, metric: .cosine, payloadIndexes: configuration.indexed ? ["draw", "buyer"] : []))
        let start = ContinuousClock.now
        let batch = 1_000
        for first in stride(from: 0, to: records, by: batch) {
            let count = min(batch, records - first)
            let inputs = (0..<count).map { offset -> RecordInput in
                let row = first + offset
                return RecordInput(id: "r\(row)", vector: Array(base[(row * dimensions)..<((row + 1) * dimensions)]),
                                   metadata: ["draw": .int(draws[row]), "buyer": .string(Self.buyer(row))])
            }
            try await collection.write(.add(inputs))
            if first % 100_000 == 0 { progress("loaded \(first + count) of \(records)") }
        }
        while collection.stats().unindexedRecords > 0 { try await Task.sleep(for: .milliseconds(50)) }
        let loadSeconds = (ContinuousClock.now - start).seconds
        progress(String(format: "%d records loaded and indexed in %.0f s", records, loadSeconds))

        // Exact filtered top 10 per query and selectivity (nil threshold: unfiltered).
        let cases: [Int64?] = [nil] + Self.thresholds.map(\.below)
        var truth: [[Set<Int>]] = []
        for threshold in cases {
            let matching = (0..<records).filter { threshold == nil || draws[$0] < (threshold ?? 0) }
            truth.append(queries.map { query in Self.exactTop(10, query, base, dimensions, matching) })
            progress("ground truth for \(threshold.map { "draw < \($0)" } ?? "no filter"): \(matching.count) matching")
        }

        var latencies = [[Double]](repeating: [], count: cases.count)
        var hits = [Int](repeating: 0, count: cases.count)
        for round in 0..<configuration.rounds {
            for (index, query) in queries.enumerated() {
                for (position, threshold) in cases.enumerated() {
                    let filter: WhereFilter? = threshold.map { .lt("draw", .int($0)) }
                    let begin = ContinuousClock.now
                    let found = try collection.query([query], k: 10, filter: filter, include: [], ef: configuration.ef).first ?? []
                    latencies[position].append((ContinuousClock.now - begin).seconds * 1_000)
                    if round == 0 {
                        hits[position] += found.filter { truth[position][index].contains(Int($0.id.dropFirst()) ?? -1) }.count
                    }
                }
            }
        }
        // The page's facet panel: the ten most common buyers, overall and within a filter.
        var facetRows: [(String, Int, [Double])] = []
        for (label, filter) in [("none", nil), ("draw < 50000 (5%)", WhereFilter.lt("draw", .int(50_000)))] as [(String, WhereFilter?)] {
            var times: [Double] = []
            var matched = 0
            for _ in 0..<(configuration.rounds * 20) {
                let begin = ContinuousClock.now
                matched = try collection.facets(field: "buyer", filter: filter, limit: 10).matched
                times.append((ContinuousClock.now - begin).seconds * 1_000)
            }
            facetRows.append((label, matched, times))
        }
        try await engine.close()
        func percentile(_ values: [Double], _ p: Double) -> Double {
            let sorted = values.sorted()
            return sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
        }
        func recall(_ position: Int) -> Double {
            let possible = truth[position].reduce(0) { $0 + $1.count }
            return possible == 0 ? 1 : Double(hits[position]) / Double(possible)
        }
        let unfilteredP50 = percentile(latencies[0], 0.5)
        let rows = Self.thresholds.enumerated().map { offset, entry in
            let position = offset + 1
            let p50 = percentile(latencies[position], 0.5)
            return Row(selectivity: entry.selectivity, matching_records: draws.filter { $0 < entry.below }.count,
                       recall_at_10: recall(position), p50_milliseconds: p50, p99_milliseconds: percentile(latencies[position], 0.99),
                       p50_over_unfiltered: p50 / max(unfilteredP50, 1e-9))
        }
        return Result(records: records, queries: queryCount, indexed_field: configuration.indexed, ef: configuration.ef, load_seconds: loadSeconds,
                      unfiltered_p50_milliseconds: unfilteredP50, unfiltered_p99_milliseconds: percentile(latencies[0], 0.99),
                      unfiltered_recall_at_10: recall(0), rows: rows,
                      facets: facetRows.map { FacetRow(filter: $0.0, matched: $0.1, p50_milliseconds: percentile($0.2, 0.5),
                                                       p99_milliseconds: percentile($0.2, 0.99)) })
    }

    /// The rows (of `matching`) with the k largest inner products with `query`.
    static func exactTop(_ k: Int, _ query: [Float], _ base: [Float], _ dimensions: Int, _ matching: [Int]) -> Set<Int> {
        var best: [(Int, Float)] = []
        best.reserveCapacity(k + 1)
        base.withUnsafeBufferPointer { vectors in
            query.withUnsafeBufferPointer { q in
                guard let vectorBase = vectors.baseAddress, let queryBase = q.baseAddress else { return }
                let raw = UnsafeRawPointer(vectorBase)
                let rawQuery = UnsafeRawPointer(queryBase)
                for row in matching {
                    let offset = row * dimensions
                    // Sixteen lanes at a time (the scaled sets' 384 dimensions divide by 16), then the rest.
                    var lanes = SIMD16<Float>()
                    var dimension = 0
                    while dimension + 16 <= dimensions {
                        lanes += raw.loadUnaligned(fromByteOffset: (offset + dimension) * 4, as: SIMD16<Float>.self)
                            * rawQuery.loadUnaligned(fromByteOffset: dimension * 4, as: SIMD16<Float>.self)
                        dimension += 16
                    }
                    var sum = lanes.sum()
                    while dimension < dimensions {
                        sum += vectors[offset + dimension] * q[dimension]
                        dimension += 1
                    }
                    if best.count < k || sum > (best.last?.1 ?? -.infinity) {
                        best.append((row, sum))
                        best.sort { $0.1 > $1.1 }
                        if best.count > k { best.removeLast() }
                    }
                }
            }
        }
        return Set(best.map(\.0))
    }
}
