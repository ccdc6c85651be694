import Benchmark
import SextantKernels

/// ns per distance, 384-d (MiniLM), for every dispatch level this CPU supports:
/// f16 storage against f32 storage, single calls and the batched kernel the
/// index uses. 4,096 stored vectors (3 MiB as f16) so the data sits in cache and
/// the figure is the kernel's own cost.
let benchmarks: @Sendable () -> Void = {
    let dimensions = 384
    let rows = 4_096
    var state: UInt64 = 1
    func next() -> Float {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: state >> 11) % 2_000_000) / 1_000_000 - 1
    }
    let query = (0..<dimensions).map { _ in next() }
    let floats = (0..<(rows * dimensions)).map { _ in next() }
    let halves = floats.map(HalfConversion.toHalf)
    let slots = (0..<UInt32(rows)).map { ($0 &* 2_654_435_761) % UInt32(rows) }

    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .throughput], scalingFactor: .kilo,
                                           maxDuration: .seconds(2))

    for level in DistanceKernels.supportedLevels {
        let kernels = DistanceKernels.kernels(for: level)
        Benchmark("dot f16 \(level.rawValue) (per 1k distances)") { benchmark in
            query.withUnsafeBufferPointer { q in
                halves.withUnsafeBufferPointer { h in
                    for _ in benchmark.scaledIterations {
                        var sum: Float = 0
                        for row in 0..<1_000 {
                            sum += kernels.dotHalf(q.baseAddress, h.baseAddress! + (row % rows) * dimensions, dimensions)
                        }
                        blackHole(sum)
                    }
                }
            }
        }
        Benchmark("dot f32 \(level.rawValue) (per 1k distances)") { benchmark in
            query.withUnsafeBufferPointer { q in
                floats.withUnsafeBufferPointer { f in
                    for _ in benchmark.scaledIterations {
                        var sum: Float = 0
                        for row in 0..<1_000 {
                            sum += kernels.dotFloat(q.baseAddress, f.baseAddress! + (row % rows) * dimensions, dimensions)
                        }
                        blackHole(sum)
                    }
                }
            }
        }
        Benchmark("l2 f16 \(level.rawValue) (per 1k distances)") { benchmark in
            query.withUnsafeBufferPointer { q in
                halves.withUnsafeBufferPointer { h in
                    for _ in benchmark.scaledIterations {
                        var sum: Float = 0
                        for row in 0..<1_000 {
                            sum += kernels.l2SquaredHalf(q.baseAddress, h.baseAddress! + (row % rows) * dimensions, dimensions)
                        }
                        blackHole(sum)
                    }
                }
            }
        }
        Benchmark("batch f16 \(level.rawValue), random slots (per 1k distances)") { benchmark in
            var out = [Float](repeating: 0, count: 1_000)
            query.withUnsafeBufferPointer { q in
                halves.withUnsafeBufferPointer { h in
                    slots.withUnsafeBufferPointer { s in
                        out.withUnsafeMutableBufferPointer { o in
                            for _ in benchmark.scaledIterations {
                                kernels.batchHalf(q.baseAddress, h.baseAddress, dimensions, s.baseAddress, 1_000, dimensions, 0,
                                                  o.baseAddress)
                                blackHole(o[999])
                            }
                        }
                    }
                }
            }
        }
    }

    // Codes, per 1k distances: int8 (one byte per dimension) and sign codes
    // (one bit), at every level this CPU runs; the same random slots.
    let low = [Float](repeating: -1, count: dimensions)
    let step = [Float](repeating: 2.0 / 255, count: dimensions)
    let codeStride = Int8Query.codeBytes(dimensions: dimensions, metric: .cosine)
    let codes = (0..<rows).flatMap { row in
        Int8Query.encode(Array(floats[(row * dimensions)..<((row + 1) * dimensions)]), low: low, step: step, metric: .cosine)
    }
    let prepared = Int8Query(query, low: low, step: step, metric: .cosine)
    let words = (dimensions + 63) / 64
    let signs = (0..<(rows * words)).map { _ in UInt64(bitPattern: Int64(next() * 1e9)) }
    let querySigns = (0..<words).map { _ in UInt64(bitPattern: Int64(next() * 1e9)) }
    for level in CodeKernels.supportedInt8Levels {
        let kernels = CodeKernels.kernels(int8: level, bits: .scalar)
        Benchmark("batch int8 \(level.rawValue), random slots (per 1k distances)") { benchmark in
            var out = [Float](repeating: 0, count: 1_000)
            for _ in benchmark.scaledIterations {
                kernels.int8Batch(prepared.prepared, codes, codeStride, slots, 1_000, &out)
                blackHole(out[999])
            }
        }
    }
    for level in CodeKernels.supportedBitsLevels {
        let kernels = CodeKernels.kernels(int8: .scalar, bits: level)
        Benchmark("batch bits1 \(level.rawValue), random slots (per 1k distances)") { benchmark in
            var out = [Float](repeating: 0, count: 1_000)
            for _ in benchmark.scaledIterations {
                kernels.bitsBatch(querySigns, signs, words, slots, 1_000, words, &out)
                blackHole(out[999])
            }
        }
    }
}
