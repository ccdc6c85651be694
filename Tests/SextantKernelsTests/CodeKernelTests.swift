import CSextantKernels
import SextantKernels
import SextantTestSupport
import Testing

/// The code kernels (int8 dot products, Hamming distances), every level this
/// CPU runs, against plain integer and float64 references.
@Suite struct CodeKernelTests {

    @Test func int8DotProductsMatchTheIntegerReferenceAtEveryLevel() {
        var generator = SeededGenerator(seed: 11)
        // Dimensions that exercise full 64-byte blocks, a masked tail and the AVX2 scalar tail.
        for dimensions in [1, 15, 16, 63, 64, 100, 384, 1_000] {
            let query = (0..<dimensions).map { _ in Int8.random(in: -127...127, using: &generator) }
            let code = (0..<dimensions).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let expected = zip(query, code).reduce(Int32(0)) { $0 + Int32($1.0) * Int32($1.1) }
            #expect(sx_sq8_dot_scalar(query, code, dimensions) == expected)
            if CodeKernels.supportedInt8Levels.contains(.avx2) { #expect(sx_sq8_dot_avx2(query, code, dimensions) == expected) }
            if CodeKernels.supportedInt8Levels.contains(.avx512vnni) { #expect(sx_sq8_dot_vnni(query, code, dimensions) == expected) }
        }
    }

    @Test func batchesAgreeWithTheScalarBatchAtEveryLevel() {
        var generator = SeededGenerator(seed: 12)
        let dimensions = 384
        let rows = 300
        for metric in [Metric.cosine, .l2] {
            let vectors = (0..<rows).map { _ in (0..<dimensions).map { _ in Float.random(in: -0.3...0.3, using: &generator) } }
            let low = [Float](repeating: -0.32, count: dimensions)
            let step = [Float](repeating: 0.64 / 255, count: dimensions)
            let stride = Int8Query.codeBytes(dimensions: dimensions, metric: metric)
            let codes = vectors.flatMap { Int8Query.encode($0, low: low, step: step, metric: metric) }
            #expect(codes.count == rows * stride)
            let query = Int8Query((0..<dimensions).map { _ in Float.random(in: -0.3...0.3, using: &generator) },
                                  low: low, step: step, metric: metric)
            let slots = (0..<UInt32(rows)).map { ($0 &* 7_919) % UInt32(rows) }
            func run(_ kernels: CodeKernels) -> [Float] {
                var out = [Float](repeating: 0, count: rows)
                kernels.int8Batch(query.prepared, codes, stride, slots, rows, &out)
                return out
            }
            let reference = run(.kernels(int8: .scalar, bits: .scalar))
            for level in CodeKernels.supportedInt8Levels {
                let result = run(.kernels(int8: level, bits: .scalar))
                #expect(zip(result, reference).allSatisfy { abs($0 - $1) <= 1e-4 * max(1, abs($1)) }, "level \(level) under \(metric)")
            }
        }
    }

    @Test func int8EstimatesTrackTheExactDistance() {
        // Unit vectors: the estimate of 1 - q·x is off by far less than the gaps a ranking needs.
        var generator = SeededGenerator(seed: 13)
        let dimensions = 384
        func unit() -> [Float] {
            let raw = (0..<dimensions).map { _ in Float.random(in: -1...1, using: &generator) }
            let norm = raw.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
            return raw.map { $0 / norm }
        }
        let vectors = (0..<200).map { _ in unit() }
        var low = [Float](repeating: .infinity, count: dimensions)
        var high = [Float](repeating: -.infinity, count: dimensions)
        for vector in vectors {
            for d in 0..<dimensions {
                low[d] = min(low[d], vector[d])
                high[d] = max(high[d], vector[d])
            }
        }
        let step = zip(low, high).map { ($1 - $0) / 255 }
        let codes = vectors.flatMap { Int8Query.encode($0, low: low, step: step, metric: .cosine) }
        let raw = unit()
        let query = Int8Query(raw, low: low, step: step, metric: .cosine)
        var estimates = [Float](repeating: 0, count: vectors.count)
        CodeKernels.selected.int8Batch(query.prepared, codes, dimensions, Array(0..<UInt32(vectors.count)), vectors.count, &estimates)
        for (vector, estimate) in zip(vectors, estimates) {
            let exact = 1 - zip(raw, vector).reduce(Float(0)) { $0 + $1.0 * $1.1 }
            #expect(abs(estimate - exact) < 0.02, "estimate \(estimate) for exact \(exact)")
        }
    }

    @Test func preparingAStoredCodeMatchesDecodingThenPreparing() {
        var generator = SeededGenerator(seed: 15)
        for dimensions in [16, 100, 384] {
            for metric in [Metric.cosine, .l2] {
                let low = (0..<dimensions).map { _ in Float.random(in: -0.4 ... -0.1, using: &generator) }
                let step = (0..<dimensions).map { _ in Float.random(in: 0.5...0.8, using: &generator) / 255 }
                let code = (0..<dimensions).map { _ in UInt8.random(in: 0...255, using: &generator) }
                var scratch = [Float](repeating: 0, count: dimensions)
                let reference = UnsafeMutablePointer<sx_sq8_query>.allocate(capacity: 1)
                let fast = UnsafeMutablePointer<sx_sq8_query>.allocate(capacity: 1)
                defer {
                    reference.deallocate()
                    fast.deallocate()
                }
                sx_sq8_prepare_code_scalar(code, low, step, dimensions, metric.kernelCode, &scratch, reference)
                CodeKernels.selected.int8PrepareCode(code, low, step, dimensions, metric.kernelCode, &scratch, fast)
                #expect(abs(reference.pointee.scale - fast.pointee.scale) <= 1e-6 * reference.pointee.scale)
                #expect(abs(reference.pointee.bias - fast.pointee.bias) <= 1e-3 * max(1, abs(reference.pointee.bias)))
                #expect(abs(reference.pointee.queryNormSquared - fast.pointee.queryNormSquared)
                            <= 1e-3 * max(1, reference.pointee.queryNormSquared))
                let differences = withUnsafeBytes(of: reference.pointee.values) { a in
                    withUnsafeBytes(of: fast.pointee.values) { b in (0..<dimensions).filter { a[$0] != b[$0] }.count }
                }
                // Rounding a value within float error of x.5 may go either way: never more than a stray byte.
                #expect(differences <= 2, "\(differences) of \(dimensions) bytes differ")
            }
        }
    }

    @Test func hammingDistancesMatchTheScalarReferenceAtEveryLevel() {
        var generator = SeededGenerator(seed: 14)
        for words in [1, 6, 8, 9, 64] {
            let rows = 100
            let codes = (0..<(rows * words)).map { _ in UInt64.random(in: .min ... .max, using: &generator) }
            let query = (0..<words).map { _ in UInt64.random(in: .min ... .max, using: &generator) }
            let slots = (0..<UInt32(rows)).reversed().map { $0 }
            let expected = slots.map { slot in
                Float((0..<words).reduce(0) { $0 + (query[$1] ^ codes[Int(slot) * words + $1]).nonzeroBitCount })
            }
            for level in CodeKernels.supportedBitsLevels {
                var out = [Float](repeating: -1, count: rows)
                CodeKernels.kernels(int8: .scalar, bits: level).bitsBatch(query, codes, words, slots, rows, words, &out)
                #expect(out == expected, "level \(level), \(words) words")
            }
        }
    }
}
