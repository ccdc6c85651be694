import CSextantKernels

/// One bit per dimension, set where the component is negative: a sketch 16×
/// smaller than the f16 vector whose Hamming distance ranks records by angle.
///
/// The unindexed tail keeps one per record. A query ranks the whole tail by
/// Hamming distance and scores only the nearest few hundred exactly, instead of
/// reading every tail vector: on all-MiniLM-L6-v2 vectors the exact top 10 of
/// 20,000 records is inside the 1,024 nearest codes 99.9% of the time.
public enum SignCodes {
    /// 64-bit words per code.
    @inlinable public static func words(dimensions: Int) -> Int { (dimensions + 63) / 64 }

    public static func encode(halves: UnsafePointer<UInt16>, dimensions: Int, into code: UnsafeMutablePointer<UInt64>) {
        sx_sign_code_f16(halves, dimensions, code)
    }

    public static func encode(floats: UnsafePointer<Float>, dimensions: Int, into code: UnsafeMutablePointer<UInt64>) {
        sx_sign_code_f32(floats, dimensions, code)
    }

    /// `out[i]` = Hamming distance between `query` and the i-th of `count` codes stored back to back.
    public static func distances(
        codes: UnsafePointer<UInt64>, words: Int, query: UnsafePointer<UInt64>, count: Int,
        into out: UnsafeMutablePointer<UInt16>
    ) {
        sx_hamming_codes(codes, words, query, count, out)
    }

    /// Positions of the `keep` smallest distances (clamped to `bits`), ties
    /// broken by position, in ascending position order.
    public static func smallest(_ distances: UnsafeBufferPointer<UInt16>, keep: Int, bits: Int) -> [Int] {
        precondition(bits >= 0 && bits <= Int(UInt16.max), "code length out of range")
        guard keep > 0, let base = distances.baseAddress else { return [] }
        let wanted = min(keep, distances.count)
        let positions = [UInt32](unsafeUninitializedCapacity: wanted) { buffer, initialized in
            initialized = sx_select_smallest_u16(base, distances.count, wanted, bits, buffer.baseAddress)
        }
        assert(positions.count == wanted, "selection returns exactly min(keep, count) positions")
        return positions.map { Int($0) }
    }
}
