import CSextantKernels

/// What the graph walk reads: the float16 vectors themselves, or a compact
/// code per vector kept in memory while the float16 vectors stay in their file
/// and are read only to rank the best candidates exactly.
public enum Quantization: String, Sendable, Codable, CaseIterable {
    /// Float16 vectors, walked directly (2 bytes per dimension resident).
    case none
    /// One byte per dimension (per-dimension scalar quantization), walked with
    /// int8 dot products; the best candidates are rescored against float16.
    case int8
    /// One bit per dimension (the sign around the data's centre), walked by
    /// Hamming distance; the best candidates are rescored against float16.
    case bits1

    public var usesCodes: Bool { self != .none }
}

/// The kernels for compact codes, chosen once per process by CPU feature like
/// `DistanceKernels`: int8 dot products (AVX-512 VNNI's vpdpbusd, AVX2's
/// widening multiply-add, or portable) and Hamming distances of sign codes
/// (AVX-512 VPOPCNTQ, POPCNT, or portable).
public struct CodeKernels: @unchecked Sendable {
    public enum Int8Level: String, Sendable, CaseIterable { case scalar, avx2, avx512vnni }
    public enum BitsLevel: String, Sendable, CaseIterable { case scalar, popcnt, avx512vpopcntdq }

    public typealias Int8Batch = @convention(c) (
        UnsafePointer<sx_sq8_query>?, UnsafePointer<UInt8>?, Int, UnsafePointer<UInt32>?, Int, UnsafeMutablePointer<Float>?
    ) -> Void
    public typealias Int8PrepareCode = @convention(c) (
        UnsafePointer<UInt8>?, UnsafePointer<Float>?, UnsafePointer<Float>?, Int, UInt32, UnsafeMutablePointer<Float>?,
        UnsafeMutablePointer<sx_sq8_query>?
    ) -> Void
    public typealias BitsBatch = @convention(c) (
        UnsafePointer<UInt64>?, UnsafePointer<UInt64>?, Int, UnsafePointer<UInt32>?, Int, Int, UnsafeMutablePointer<Float>?
    ) -> Void

    public let int8Level: Int8Level
    public let bitsLevel: BitsLevel
    public let int8Batch: Int8Batch
    /// A stored code prepared as the query (neighbour selection), in one step.
    public let int8PrepareCode: Int8PrepareCode
    public let bitsBatch: BitsBatch

    public static func kernels(int8: Int8Level, bits: BitsLevel) -> CodeKernels {
        let int8Batch: Int8Batch
        switch int8 {
        case .scalar: int8Batch = sx_batch_sq8_scalar
        case .avx2: int8Batch = sx_batch_sq8_avx2
        case .avx512vnni: int8Batch = sx_batch_sq8_vnni
        }
        let bitsBatch: BitsBatch
        switch bits {
        case .scalar: bitsBatch = sx_batch_hamming_scalar
        case .popcnt: bitsBatch = sx_batch_hamming_popcnt
        case .avx512vpopcntdq: bitsBatch = sx_batch_hamming_vpopcnt
        }
        let prepareCode: Int8PrepareCode = int8 == .avx512vnni ? sx_sq8_prepare_code_avx512 : sx_sq8_prepare_code_scalar
        return CodeKernels(int8Level: int8, bitsLevel: bits, int8Batch: int8Batch, int8PrepareCode: prepareCode,
                           bitsBatch: bitsBatch)
    }

    /// The int8 levels this CPU runs, lowest first.
    public static let supportedInt8Levels: [Int8Level] = {
        var levels: [Int8Level] = [.scalar]
        if DistanceKernels.supportedLevels.contains(.avx2) { levels.append(.avx2) }
        if sx_cpu_has_avx512_vnni() { levels.append(.avx512vnni) }
        return levels
    }()

    public static let supportedBitsLevels: [BitsLevel] = {
        var levels: [BitsLevel] = [.scalar]
        if sx_cpu_has_popcnt() { levels.append(.popcnt) }
        if sx_cpu_has_avx512_vpopcntdq() { levels.append(.avx512vpopcntdq) }
        return levels
    }()

    /// The set this process uses: the best this CPU runs, capped by the
    /// distance kernels' level (`SEXTANT_KERNELS=scalar|avx2|avx512`), so one
    /// variable pins every kernel for a benchmark or a fallback check.
    public static let selected: CodeKernels = {
        let cap = DistanceKernels.selected.level
        let int8: Int8Level
        let bits: BitsLevel
        switch cap {
        case .scalar:
            int8 = .scalar
            bits = .scalar
        case .avx2:
            int8 = supportedInt8Levels.contains(.avx2) ? .avx2 : .scalar
            bits = supportedBitsLevels.contains(.popcnt) ? .popcnt : .scalar
        case .avx512:
            int8 = supportedInt8Levels.last ?? .scalar
            bits = supportedBitsLevels.last ?? .scalar
        }
        return kernels(int8: int8, bits: bits)
    }()

    public var description: String { "int8 \(int8Level.rawValue), bits \(bitsLevel.rawValue)" }
}

/// A float32 query prepared for int8 codes once, measured against many codes
/// (the engine's index keeps these in its search contexts; tests and
/// micro-benchmarks use this wrapper).
public final class Int8Query: @unchecked Sendable {
    public let prepared: UnsafeMutablePointer<sx_sq8_query>

    /// `low` and `step` give each dimension's code range (x ≈ low + step · code);
    /// `metric` is `Metric.kernelCode` (0: 1 - dot, 1: squared L2).
    public init(_ query: [Float], low: [Float], step: [Float], metric: Metric) {
        precondition(query.count == low.count && low.count == step.count && query.count <= Int(SX_SQ8_MAXIMUM_PADDED),
                     "one range per dimension")
        prepared = .allocate(capacity: 1)
        sx_sq8_prepare(query, low, step, query.count, metric.kernelCode, prepared)
    }

    deinit { prepared.deallocate() }

    /// Bytes of one code of `dimensions` under `metric` (the squared length follows under l2).
    public static func codeBytes(dimensions: Int, metric: Metric) -> Int { sx_sq8_code_bytes(dimensions, metric == .l2) }

    /// `vector`'s code, with its squared length after it under l2.
    public static func encode(_ vector: [Float], low: [Float], step: [Float], metric: Metric) -> [UInt8] {
        var code = [UInt8](repeating: 0, count: codeBytes(dimensions: vector.count, metric: metric))
        code.withUnsafeMutableBufferPointer { out in
            guard let base = out.baseAddress else { return }
            sx_sq8_encode(vector, low, step, vector.count, base)
            if metric == .l2 {
                let squared = vector.reduce(Float(0)) { $0 + $1 * $1 }
                UnsafeMutableRawPointer(base + sx_sq8_norm_offset(vector.count)).storeBytes(of: squared, as: Float.self)
            }
        }
        return code
    }
}
