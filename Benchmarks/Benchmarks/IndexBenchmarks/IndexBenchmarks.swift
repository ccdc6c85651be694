import Benchmark
import SextantIndex
import SextantKernels

/// Search and insert on a 20,000 × 384-d random index (M=16, efConstruction=200).
/// Random data is harder than real embeddings; the debian-minilm figures come from
/// `sextant bench ann` (see docs/BENCHMARKS.md).
let benchmarks: @Sendable () -> Void = {
    let dimensions = 384
    let count = 20_000
    var state: UInt64 = 7
    func next() -> Float {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: state >> 11) % 2_000_000) / 1_000_000 - 1
    }
    let vectors = (0..<count).map { _ in (0..<dimensions).map { _ in next() } }
    let queries = (0..<256).map { _ in (0..<dimensions).map { _ in next() } }
    nonisolated(unsafe) var built: HNSWIndex? = nil
    func index() throws -> HNSWIndex {
        if let built { return built }
        let fresh = try HNSWIndex(dimensions: dimensions, metric: .cosine, capacity: count + 100_000)
        for (slot, vector) in vectors.enumerated() { try fresh.insert(slot: UInt32(slot), vector: vector) }
        built = fresh
        return fresh
    }

    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .throughput, .mallocCountTotal],
                                           maxDuration: .seconds(3))

    for ef in [32, 64, 128] {
        Benchmark("search k=10 ef=\(ef)") { benchmark in
            let index = try index()
            var round = 0
            for _ in benchmark.scaledIterations {
                blackHole(try index.search(queries[round % queries.count], k: 10, ef: ef, strategy: .graph))
                round += 1
            }
        }
    }
    Benchmark("insert (efConstruction=200)") { benchmark in
        let index = try index()
        var slot = UInt32(index.slotHighWater)
        for _ in benchmark.scaledIterations {
            try index.insert(slot: slot, vector: queries[Int(slot) % queries.count])
            slot += 1
        }
    }
}
