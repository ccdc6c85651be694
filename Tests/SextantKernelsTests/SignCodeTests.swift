import CSextantKernels
import SextantKernels
import SextantTestSupport
import Testing

@Suite struct SignCodeTests {
    /// Hamming distance between the code of entry `entry` and `query`, plainly.
    static func distance(_ codes: [UInt64], _ entry: Int, _ words: Int, _ query: [UInt64]) -> Int {
        (0..<words).reduce(0) { $0 + (codes[entry * words + $1] ^ query[$1]).nonzeroBitCount }
    }

    /// Bit i is the sign of component i, from f32 and f16 alike, unused bits zero.
    @Test func codesAreSignBits() {
        for dimensions in [1, 63, 64, 65, 384, 4096] {
            var generator = SeededGenerator(seed: UInt64(dimensions))
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

    /// Selection returns exactly the `keep` smallest, ties by position, like a stable sort.
    @Test func selectionMatchesAStableSort() {
        var generator = SeededGenerator(seed: 7)
        let count = 5_000
        let distances = (0..<count).map { _ in UInt16.random(in: 100...260, using: &generator) }
        for keep in [0, 1, 10, 1_024, 4_999, 5_000, 9_000] {
            var chosen = [UInt32](repeating: 0, count: max(1, keep))
            let taken = sx_select_smallest_u16(distances, count, keep, 384, &chosen)
            #expect(taken == min(keep, count))
            let expected = (0..<count).sorted { distances[$0] != distances[$1] ? distances[$0] < distances[$1] : $0 < $1 }
                .prefix(keep).sorted()
            #expect(chosen.prefix(taken).map(Int.init) == Array(expected))
        }
    }
}

@Suite struct BlockedSignCodeTests {
    /// Every kernel variant this CPU has (portable, POPCNT, AVX-512 VPOPCNTQ) gives
    /// the plain distances, and `nearest` returns at least `keep` entries of the
    /// range with nothing nearer left out, on ranges that start and end mid-block.
    @Test func blockedNearestIsASupersetOfTheTrueNearest() {
        var generator = SeededGenerator(seed: 99)
        let words = 6
        let entries = 8_192
        var plain = [UInt64](repeating: 0, count: entries * words)
        // Codes drawn around a few centres, so distances cluster and tie as real ones do.
        let centres = (0..<4).map { _ in (0..<words).map { _ in generator.next() } }
        for entry in 0..<entries {
            for word in 0..<words {
                plain[entry * words + word] = centres[entry % 4][word] ^ (generator.next() & generator.next() & generator.next())
            }
        }
        var blocks = [UInt64](repeating: .max, count: SignCodes.Blocks.words(entries: entries, dimensions: words * 64))
        plain.withUnsafeBufferPointer { codes in
            for entry in 0..<entries {
                if let base = codes.baseAddress { SignCodes.Blocks.store(base + entry * words, entry: entry, words: words, in: &blocks) }
            }
        }
        let query = (0..<words).map { _ in generator.next() }
        let reference = (0..<entries).map { UInt16(SignCodeTests.distance(plain, $0, words, query)) }
        var variants = 0
        for variant in 0..<3 {
            var out = [UInt16](repeating: 0, count: 5_000)
            guard sx_block_code_distances_variant(Int32(variant), blocks, words, query, 3, 5_000, &out) == 0 else { continue }
            variants += 1
            #expect(out == Array(reference[3..<5_003]), "kernel variant \(variant)")
        }
        #expect(variants >= 1)
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
