import CSextantKernels

/// How distance is measured. Smaller is always closer.
///
/// The definitions are ChromaDB's, so the compatible REST API can pass numbers
/// through unchanged: cosine = 1 - cos(a, b), inner product = 1 - a·b,
/// l2 = squared Euclidean distance.
public enum Metric: String, Sendable, CaseIterable, Codable {
    case cosine
    case innerProduct = "ip"
    case l2

    /// Cosine vectors are normalised once on the way in, so every distance after
    /// that is the cheaper inner-product kernel (USearch normalises per call).
    public var normalizesVectors: Bool { self == .cosine }

    /// Kernel selector passed to the C batch kernels: 0 = 1 - dot, 1 = squared L2.
    @inlinable public var kernelCode: UInt32 { self == .l2 ? 1 : 0 }
}

/// One coherent set of distance kernels for a CPU level. The process chooses a
/// set once (`DistanceKernels.selected`); every index holds it by value and
/// calls through plain C function pointers, never through a per-call switch.
public struct DistanceKernels: @unchecked Sendable {
    public enum Level: String, Sendable, CaseIterable, Comparable {
        case scalar, avx2, avx512
        var rank: Int {
            switch self {
            case .scalar: return 0
            case .avx2: return 1
            case .avx512: return 2
            }
        }
        public static func < (a: Level, b: Level) -> Bool { a.rank < b.rank }
    }

    public typealias HalfKernel = @convention(c) (UnsafePointer<Float>?, UnsafePointer<UInt16>?, Int) -> Float
    public typealias FloatKernel = @convention(c) (UnsafePointer<Float>?, UnsafePointer<Float>?, Int) -> Float
    public typealias BatchKernel = @convention(c) (
        UnsafePointer<Float>?, UnsafePointer<UInt16>?, Int, UnsafePointer<UInt32>?, Int, Int, UInt32,
        UnsafeMutablePointer<Float>?
    ) -> Void

    public let level: Level
    public let dotHalf: HalfKernel
    public let l2SquaredHalf: HalfKernel
    public let dotFloat: FloatKernel
    public let l2SquaredFloat: FloatKernel
    public let batchHalf: BatchKernel

    public static func kernels(for level: Level) -> DistanceKernels {
        switch level {
        case .scalar:
            return DistanceKernels(
                level: .scalar, dotHalf: sx_dot_f16_scalar, l2SquaredHalf: sx_l2sq_f16_scalar,
                dotFloat: sx_dot_f32_scalar, l2SquaredFloat: sx_l2sq_f32_scalar, batchHalf: sx_batch_f16_scalar)
        case .avx2:
            return DistanceKernels(
                level: .avx2, dotHalf: sx_dot_f16_avx2, l2SquaredHalf: sx_l2sq_f16_avx2,
                dotFloat: sx_dot_f32_avx2, l2SquaredFloat: sx_l2sq_f32_avx2, batchHalf: sx_batch_f16_avx2)
        case .avx512:
            return DistanceKernels(
                level: .avx512, dotHalf: sx_dot_f16_avx512, l2SquaredHalf: sx_l2sq_f16_avx512,
                dotFloat: sx_dot_f32_avx512, l2SquaredFloat: sx_l2sq_f32_avx512,
                batchHalf: sx_batch_f16_avx512)
        }
    }

    /// The levels this CPU can run, lowest first. `.scalar` is always present.
    public static let supportedLevels: [Level] = {
        let features = sx_cpu_features()
        var levels: [Level] = [.scalar]
        if features & UInt32(SX_CPU_AVX2_FMA_F16C) != 0 { levels.append(.avx2) }
        if features & UInt32(SX_CPU_AVX512F) != 0 { levels.append(.avx512) }
        return levels
    }()

    /// The set this process uses, chosen once. `SEXTANT_KERNELS=scalar|avx2|avx512`
    /// caps the level (for benchmarks and for checking the fallback end to end).
    public static let selected: DistanceKernels = {
        var level = supportedLevels.last ?? .scalar
        if let raw = getenv("SEXTANT_KERNELS").map({ String(cString: $0) }), let cap = Level(rawValue: raw) {
            level = supportedLevels.filter { $0 <= cap }.last ?? .scalar
        }
        return kernels(for: level)
    }()

    /// Distance between an f32 query and one stored f16 vector under `metric`.
    @inlinable
    public func distance(
        _ metric: Metric, query: UnsafePointer<Float>, stored: UnsafePointer<UInt16>, dimensions: Int
    ) -> Float {
        metric == .l2
            ? l2SquaredHalf(query, stored, dimensions) : 1 - dotHalf(query, stored, dimensions)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Float16 storage conversions (F16C when present, exact round-to-nearest-even otherwise).
public enum HalfConversion {
    public static func toHalf(_ source: UnsafePointer<Float>, _ destination: UnsafeMutablePointer<UInt16>, count: Int) {
        sx_f32_to_f16_array(source, destination, count)
    }

    public static func toFloat(_ source: UnsafePointer<UInt16>, _ destination: UnsafeMutablePointer<Float>, count: Int) {
        sx_f16_to_f32_array(source, destination, count)
    }

    public static func toHalf(_ value: Float) -> UInt16 { sx_f32_to_f16_bits(value) }
    public static func toFloat(_ bits: UInt16) -> Float { sx_f16_bits_to_f32(bits) }
}

/// Vector helpers used on the way into the index.
public enum VectorMath {
    /// Scales `vector` to unit length in place; a zero vector stays zero.
    public static func normalize(_ vector: UnsafeMutableBufferPointer<Float>) {
        var sum: Double = 0
        for value in vector { sum += Double(value) * Double(value) }
        guard sum > 0 else { return }
        let scale = Float(1 / sum.squareRoot())
        for index in vector.indices { vector[index] *= scale }
    }

    /// True when every component is finite (no NaN, no ±Inf).
    public static func isFinite(_ vector: UnsafeBufferPointer<Float>) -> Bool {
        for value in vector where !value.isFinite { return false }
        return true
    }
}

/// CRC32C (Castagnoli) over bytes; hardware-accelerated where SSE4.2 exists.
public enum CRC32C {
    @inlinable
    public static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return crc }
        return sx_crc32c(crc, base, bytes.count)
    }

    public static func checksum(_ bytes: [UInt8], continuing crc: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0, continuing: crc) }
    }

    public static func portableChecksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return crc }
        return sx_crc32c_portable(crc, base, bytes.count)
    }
}
