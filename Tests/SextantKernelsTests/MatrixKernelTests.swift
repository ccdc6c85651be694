import CSextantKernels
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The embedder's bf16 linear layer and vectorised GELU against plain f64 references.
@Suite struct MatrixKernelTests {
    @Test(.enabled(if: sx_bf16_supported())) func bf16LinearMatchesF64WithinBF16Rounding() {
        var generator = SystemRandomNumberGenerator()
        // Shapes of MiniLM's layers, with a row count that leaves a remainder after blocks of 8.
        for (m, k, n) in [(13, 384, 1_152), (9, 1_536, 384), (1, 384, 32)] {
            let a = (0..<(m * k)).map { _ in Float.random(in: -1...1, using: &generator) }
            let w = (0..<(n * k)).map { _ in Float.random(in: -0.1...0.1, using: &generator) }
            let bias = (0..<n).map { _ in Float.random(in: -1...1, using: &generator) }
            var packed = [UInt32](repeating: 0, count: sx_bf16_packed_count(Int32(n), Int32(k)))
            var scratch = [UInt32](repeating: 0, count: m * k / 2)
            var c = [Float](repeating: .nan, count: m * n)
            w.withUnsafeBufferPointer { sx_bf16_pack_weights($0.baseAddress, Int32(n), Int32(k), packed.withUnsafeMutableBufferPointer { $0.baseAddress }) }
            a.withUnsafeBufferPointer { ap in
                packed.withUnsafeBufferPointer { pp in
                    bias.withUnsafeBufferPointer { bp in
                        c.withUnsafeMutableBufferPointer { cp in
                            scratch.withUnsafeMutableBufferPointer { sp in
                                sx_bf16_linear(ap.baseAddress, Int32(m), Int32(k), pp.baseAddress, Int32(n), bp.baseAddress, cp.baseAddress,
                                               sp.baseAddress)
                            }
                        }
                    }
                }
            }
            var worst = 0.0
            for row in 0..<m {
                for column in 0..<n {
                    var exact = Double(bias[column])
                    var magnitude = 0.0
                    for i in 0..<k {
                        exact += Double(a[row * k + i]) * Double(w[column * k + i])
                        magnitude += abs(Double(a[row * k + i]) * Double(w[column * k + i]))
                    }
                    // bf16 keeps 8 significant bits: each product is within 2·2⁻⁸ of exact.
                    worst = max(worst, abs(Double(c[row * n + column]) - exact) / (magnitude * 2 * 0.00390625 + 1e-6))
                }
            }
            #expect(worst <= 1, "m \(m) k \(k) n \(n): error \(worst) of the bf16 bound")
        }
    }

    @Test func geluMatchesErfReference() {
        var values = stride(from: Float(-9), through: 9, by: 0.001).map { $0 }
        values += [0, -0, .leastNormalMagnitude, 20, -20]
        let expected = values.map { v in 0.5 * Double(v) * (1 + erf(Double(v) * 0.70710678118654752)) }
        values.withUnsafeMutableBufferPointer { sx_gelu($0.baseAddress, $0.count) }
        for (got, want) in zip(values, expected) {
            #expect(abs(Double(got) - want) <= 4e-7 * max(1, abs(want)), "gelu: \(got) vs \(want)")
        }
    }
}
