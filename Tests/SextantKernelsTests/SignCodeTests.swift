import CSextantKernels
import SextantKernels
import Testing

@Suite struct SignCodeTests {
    private struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// Bit i is the sign of component i, from f32 and f16 alike, unused bits zero.
    @Test func codesAreSignBits() {
        for dimensions in [1, 63, 64, 65, 384, 4096] {
            var generator = Generator(state: UInt64(dimensions))
            let vector = (0..<dimensions).map { _ in Float.random(in: -1...1, using: &generator) }
            let halves = vector.map { HalfConversion.toHalf($0) }
            let words = SignCodes.words(dimensions: dimensions)
            var fromFloats = [UInt64](repeating: .max, count: words)
            var fromHalves = [UInt64](repeating: .max, count: words)
            SignCodes.encode(floats: vector, dimensions: dimensions, into: &fromFloats)
            SignCodes.encode(halves: halves, dimensions: dimensions, into: &fromHalves)
            #expect(fromFloats == fromHalves)
            for index in 0..<words * 64 {
                let bit = fromFloats[index / 64] >> UInt64(index % 64) & 1
                #expect(bit == (index < dimensions && vector[index].sign == .minus ? 1 : 0))
            }
        }
    }

    /// The POPCNT kernel, the portable one and a plain count agree; selection
    /// returns exactly the `keep` nearest, ties by position, like a stable sort.
    @Test func hammingAndSelectionMatchAPlainReference() {
        var generator = Generator(state: 7)
        let words = 6
        let count = 5_000
        let codes = (0..<count * words).map { _ in UInt64.random(in: 0...UInt64.max, using: &generator) & 0xFFFF_FF0F_FFFF_FFFF }
        let query = (0..<words).map { _ in UInt64.random(in: 0...UInt64.max, using: &generator) }
        var fast = [UInt16](repeating: 0, count: count)
        var portable = [UInt16](repeating: 0, count: count)
        SignCodes.distances(codes: codes, words: words, query: query, count: count, into: &fast)
        sx_hamming_codes_portable(codes, words, query, count, &portable)
        let plain = (0..<count).map { i in (0..<words).reduce(0) { $0 + (codes[i * words + $1] ^ query[$1]).nonzeroBitCount } }
        #expect(fast == portable)
        #expect(fast.map(Int.init) == plain)
        for keep in [0, 1, 10, 1_024, 4_999, 5_000, 9_000] {
            let chosen = fast.withUnsafeBufferPointer { SignCodes.smallest($0, keep: keep, bits: words * 64) }
            let expected = (0..<count).sorted { fast[$0] != fast[$1] ? fast[$0] < fast[$1] : $0 < $1 }.prefix(keep).sorted()
            #expect(chosen == Array(expected))
        }
    }
}
