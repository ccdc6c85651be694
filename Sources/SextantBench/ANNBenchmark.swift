import Foundation
import SextantDatasets
import SextantIndex
import SextantKernels
import Synchronization
import SextantSupport

/// `sextant bench ann`: builds the engine's own index from an fvecs file and
/// measures recall@k and single-thread queries per second for several ef values.
public struct ANNBenchmark {
    public struct Configuration: Sendable {
        public var basePath: String
        public var queriesPath: String
        public var groundTruthPath: String
        public var k = 10
        public var efValues = [16, 32, 64, 128, 256]
        public var parameters = HNSWParameters()
        public var metric = Metric.cosine
        public var buildThreads = 1
        /// Query each ef this many times over the whole query set and keep the best
        /// pass (a shared machine's noise only ever slows a pass down).
        public var passes = 3

        public init(basePath: String, queriesPath: String, groundTruthPath: String) {
            self.basePath = basePath
            self.queriesPath = queriesPath
            self.groundTruthPath = groundTruthPath
        }
    }

    public struct Result: Codable, Sendable {
        public var ef: Int
        public var recall: Double
        public var qps: Double
        public var build_seconds: Double
        public var bytes_per_vector: Double
        public var recall_by_id: Double
        public var k: Int
        public var build_threads: Int
        public var kernels: String
        public var vectors: Int
        public var distances_per_query: Double
    }

    public let configuration: Configuration
    public init(configuration: Configuration) { self.configuration = configuration }

    public func run(progress: (String) -> Void = { _ in }) throws -> [Result] {
        let config = configuration
        guard config.k >= 1 else { throw DatasetError.malformed("--k", "k must be at least 1") }
        let base = try VectorFiles.readFvecs(config.basePath)
        let queries = try VectorFiles.readFvecs(config.queriesPath, expectedDimensions: base.dimensions)
        let truth = try VectorFiles.readIvecs(config.groundTruthPath)
        guard truth.rows == queries.rows else {
            throw DatasetError.malformed(config.groundTruthPath, "\(truth.rows) rows for \(queries.rows) queries")
        }
        guard truth.dimensions >= config.k else {
            throw DatasetError.malformed(config.groundTruthPath, "holds top-\(truth.dimensions), k is \(config.k)")
        }
        progress("loaded \(base.rows) base vectors (\(base.dimensions)-d), \(queries.rows) queries")
        let index = try HNSWIndex(
            dimensions: base.dimensions, metric: config.metric, parameters: config.parameters, capacity: base.rows)
        let buildSeconds = try build(index, base, threads: config.buildThreads)
        progress(String(format: "built in %.2f s with %d thread(s)", buildSeconds, config.buildThreads))
        let used = index.usedBytes
        let bytesPerVector = Double(used.vectors + used.graph) / Double(base.rows)
        let thresholds = kthTrueDistances(base: base, queries: queries, truth: truth, k: config.k, metric: config.metric)
        var results: [Result] = []
        for ef in config.efValues {
            var best = Double.infinity
            var found: [[UInt32]] = []
            var computed = 0
            for _ in 0..<max(1, config.passes) {
                let start = ContinuousClock.now
                var pass: [[UInt32]] = []
                pass.reserveCapacity(queries.rows)
                for row in 0..<queries.rows {
                    let outcome = try queries.withRow(row) { try index.search($0, k: config.k, ef: ef, strategy: .graph) }
                    pass.append(outcome.hits.map(\.slot))
                    computed += outcome.distanceComputations
                }
                let seconds = (ContinuousClock.now - start).seconds
                if seconds < best { best = seconds }
                found = pass
            }
            let recall = Self.recall(found, base: base, queries: queries, thresholds: thresholds, k: config.k,
                                     metric: config.metric)
            let recallById = Self.recallById(found, truth: truth, k: config.k)
            results.append(Result(
                ef: ef, recall: recall, qps: Double(queries.rows) / best, build_seconds: buildSeconds,
                bytes_per_vector: bytesPerVector, recall_by_id: recallById, k: config.k,
                build_threads: config.buildThreads, kernels: index.kernels.level.rawValue, vectors: base.rows,
                distances_per_query: Double(computed) / Double(queries.rows * max(1, config.passes))))
        }
        return results
    }

    private func build(_ index: HNSWIndex, _ base: FloatVectorFile, threads: Int) throws -> Double {
        let next = Atomic<Int>(0)
        let failure = Mutex<(any Error)?>(nil)
        let start = ContinuousClock.now
        DispatchQueue.concurrentPerform(iterations: max(1, threads)) { _ in
            while true {
                let row = next.add(1, ordering: .relaxed).oldValue
                if row >= base.rows { return }
                do {
                    try base.withRow(row) { try index.insert(slot: UInt32(row), vector: $0) }
                } catch {
                    failure.withLock { $0 = error }
                    return
                }
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
        index.repairConnectivity()  // part of a build: the engine's indexer runs it when it goes idle
        return (ContinuousClock.now - start).seconds
    }

    /// Distance of the k-th true neighbour, recomputed in Double from the f32 data.
    private func kthTrueDistances(base: FloatVectorFile, queries: FloatVectorFile, truth: VectorFile<Int32>, k: Int,
                                  metric: Metric) -> [Double] {
        (0..<queries.rows).map { row in
            let id = Int(truth.row(row)[truth.row(row).startIndex + k - 1])
            return Self.exactDistance(queries.row(row), base.row(id), metric)
        }
    }

    static func exactDistance(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>, _ metric: Metric) -> Double {
        var dot = 0.0, normA = 0.0, normB = 0.0, l2 = 0.0
        for (x, y) in zip(a, b) {
            let dx = Double(x), dy = Double(y)
            dot += dx * dy
            normA += dx * dx
            normB += dy * dy
            l2 += (dx - dy) * (dx - dy)
        }
        switch metric {
        case .cosine: return 1 - dot / max((normA * normB).squareRoot(), 1e-30)
        case .innerProduct: return 1 - dot
        case .l2: return l2
        }
    }

    /// A result counts as a hit when it is at least as close as the k-th true
    /// neighbour (within 1e-6): the dataset has exact duplicate vectors, and
    /// which of two equal records the ground truth names is arbitrary.
    static func recall(_ found: [[UInt32]], base: FloatVectorFile, queries: FloatVectorFile, thresholds: [Double],
                       k: Int, metric: Metric) -> Double {
        var hits = 0
        for (row, slots) in found.enumerated() {
            for slot in slots.prefix(k)
            where exactDistance(queries.row(row), base.row(Int(slot)), metric) <= thresholds[row] + 1e-6 {
                hits += 1
            }
        }
        return Double(hits) / Double(found.count * k)
    }

    static func recallById(_ found: [[UInt32]], truth: VectorFile<Int32>, k: Int) -> Double {
        var hits = 0
        for (row, slots) in found.enumerated() {
            let expected = Set(truth.row(row).prefix(k).map { UInt32($0) })
            hits += slots.prefix(k).filter { expected.contains($0) }.count
        }
        return Double(hits) / Double(found.count * k)
    }
}
