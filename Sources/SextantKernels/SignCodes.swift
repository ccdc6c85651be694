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
}

extension SignCodes {
    /// Codes kept in blocks of eight entries (see `sx_block_code_store`): the
    /// unindexed tail's layout, which AVX-512 counts eight codes at a time.
    public enum Blocks {
        /// Words a table of `entries` codes needs (`entries` a multiple of 8).
        public static func words(entries: Int, dimensions: Int) -> Int {
            precondition(entries % 8 == 0, "block tables hold whole blocks")
            return entries * SignCodes.words(dimensions: dimensions)
        }

        public static func store(_ code: UnsafePointer<UInt64>, entry: Int, words: Int, in blocks: UnsafeMutablePointer<UInt64>) {
            sx_block_code_store(blocks, words, entry, code)
        }

        public static func distances(
            in blocks: UnsafePointer<UInt64>, words: Int, query: UnsafePointer<UInt64>, first: Int, count: Int,
            into out: UnsafeMutablePointer<UInt16>
        ) {
            sx_block_code_distances(blocks, words, query, first, count, out)
        }

        /// Entries of `first..<first + count` near `query`: at least min(keep, count),
        /// including every entry nearer than the farthest returned (about 1.5 × keep).
        public static func nearest(
            in blocks: UnsafePointer<UInt64>, words: Int, query: UnsafePointer<UInt64>, first: Int, count: Int, keep: Int
        ) -> [UInt32] {
            guard count > 0, keep > 0 else { return [] }
            let capacity = min(count, 4 * keep) + 8
            let scratch = UnsafeMutablePointer<UInt16>.allocate(capacity: count)
            defer { scratch.deallocate() }
            return [UInt32](unsafeUninitializedCapacity: capacity) { buffer, initialized in
                initialized = sx_block_code_nearest(blocks, words, query, first, count, keep, buffer.baseAddress, capacity, scratch)
            }
        }
    }
}
