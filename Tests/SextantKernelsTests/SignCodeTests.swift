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

@Suite struct BlockedSignCodeTests {
    /// Blocked storage gives the same distances as plain codes, and `nearest`
    /// returns at least `keep` entries of the range with nothing nearer left out,
    /// on ranges that start and end mid-block.
    @Test func blockedNearestIsASupersetOfTheTrueNearest() {
        var state: UInt64 = 99
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        let words = 6
        let entries = 8_192
        var plain = [UInt64](repeating: 0, count: entries * words)
        // Codes drawn around a few centres, so distances cluster and tie as real ones do.
        let centres = (0..<4).map { _ in (0..<words).map { _ in next() } }
        for entry in 0..<entries {
            for word in 0..<words { plain[entry * words + word] = centres[entry % 4][word] ^ (next() & next() & next()) }
        }
        var blocks = [UInt64](repeating: .max, count: SignCodes.Blocks.words(entries: entries, dimensions: words * 64))
        for entry in 0..<entries {
            plain.withUnsafeBufferPointer { code in
                SignCodes.Blocks.store(code.baseAddress! + entry * words, entry: entry, words: words, in: &blocks)
            }
        }
        let query = (0..<words).map { _ in next() }
        var reference = [UInt16](repeating: 0, count: entries)
        SignCodes.distances(codes: plain, words: words, query: query, count: entries, into: &reference)
        for (first, count) in [(0, entries), (3, 5_000), (1_001, 7_000), (8_000, 190), (5, 3)] {
            var blocked = [UInt16](repeating: 0, count: count)
            SignCodes.Blocks.distances(in: blocks, words: words, query: query, first: first, count: count, into: &blocked)
            #expect(blocked == Array(reference[first..<first + count]))
            for keep in [1, 64, 1_024] {
                let chosen = SignCodes.Blocks.nearest(in: blocks, words: words, query: query, first: first, count: count, keep: keep)
                #expect(chosen.count >= min(keep, count))
                #expect(Set(chosen).count == chosen.count, "no entry twice")
                #expect(chosen.allSatisfy { Int($0) >= first && Int($0) < first + count })
                let farthest = chosen.map { reference[Int($0)] }.max() ?? 0
                let nearer = (first..<first + count).filter { reference[$0] < farthest }
                #expect(Set(nearer).isSubset(of: Set(chosen.map(Int.init))), "an entry nearer than one returned was left out")
            }
        }
    }
}
