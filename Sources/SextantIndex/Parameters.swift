import CSextantKernels
import SextantKernels

public enum IndexError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidParameter(String)
    case dimensionMismatch(expected: Int, actual: Int)
    case nonFiniteVector
    case capacityExceeded(String)
    case slotInUse(UInt32)
    case slotOutOfRange(UInt32)
    case outOfMemory(String)
    case corrupted(String)

    public var description: String {
        switch self {
        case .invalidParameter(let message): return "invalid parameter: \(message)"
        case .dimensionMismatch(let expected, let actual):
            return "vector has \(actual) dimensions, the index has \(expected)"
        case .nonFiniteVector: return "vector contains NaN or infinity"
        case .capacityExceeded(let message): return "capacity exceeded: \(message)"
        case .slotInUse(let slot): return "slot \(slot) is already in use"
        case .slotOutOfRange(let slot): return "slot \(slot) is outside the index"
        case .outOfMemory(let message): return "out of memory: \(message)"
        case .corrupted(let message): return "index state is corrupted: \(message)"
        }
    }
}

/// HNSW construction and search parameters. `m` and `efConstruction` are fixed
/// when an index is created; `ef` is only the default for searches.
public struct HNSWParameters: Sendable, Codable, Equatable, Hashable {
    public var m: Int
    public var efConstruction: Int
    public var ef: Int

    public static let mRange = 4...64
    public static let efConstructionRange = 8...4096
    public static let efRange = 1...4096
    /// Levels above this are never assigned (2^-16 odds at M=16 per extra level).
    public static let maximumLevel = 15

    public init(m: Int = 16, efConstruction: Int = 200, ef: Int = 64) {
        self.m = m
        self.efConstruction = efConstruction
        self.ef = ef
    }

    public func validate() throws(IndexError) {
        guard Self.mRange.contains(m) else { throw .invalidParameter("m must be in \(Self.mRange), got \(m)") }
        guard Self.efConstructionRange.contains(efConstruction) else {
            throw .invalidParameter("efConstruction must be in \(Self.efConstructionRange), got \(efConstruction)")
        }
        guard Self.efRange.contains(ef) else { throw .invalidParameter("ef must be in \(Self.efRange), got \(ef)") }
    }
}

/// Byte layout of an index's flat arrays. Everything is derived from four
/// numbers, so a checkpoint only has to record those to be re-opened.
public struct HNSWLayout: Sendable, Equatable {
    public let dimensions: Int
    public let metric: Metric
    public let parameters: HNSWParameters
    /// Most slots the index can ever hold; sets the address-space reservations.
    public let capacity: Int
    public let quantization: Quantization

    public static let maximumDimensions = 4096
    public static let maximumCapacity = 1 << 30  // slot ids are UInt32; a generation reserves what it uses, twice over

    /// Stored vectors are zero-padded to a multiple of 16 halves (32 bytes): the
    /// SIMD loop then never needs its scalar tail, and padding does not change
    /// a dot product or an L2 distance.
    public var paddedDimensions: Int { (dimensions + 15) / 16 * 16 }
    public var vectorStrideBytes: Int { paddedDimensions * 2 }
    public var vectorStrideHalves: Int { paddedDimensions }
    public var maxNeighborsLevel0: Int { 2 * parameters.m }
    public var maxNeighborsUpper: Int { parameters.m }
    /// [version, count, ids...] in UInt32 words.
    public var level0StrideWords: Int { 2 + maxNeighborsLevel0 }
    public var upperStrideWords: Int { 2 + maxNeighborsUpper }
    public static let nodeInfoStrideBytes = 8
    /// Upper-level blocks: expected 1/(M-1) per node; reserve one per slot plus slack.
    public var upperBlockCapacity: Int { capacity + 4096 }

    public var vectorRegionBytes: Int { capacity * vectorStrideBytes }
    public var level0RegionBytes: Int { capacity * level0StrideWords * 4 }
    public var nodeInfoRegionBytes: Int { capacity * Self.nodeInfoStrideBytes }
    public var upperRegionBytes: Int { upperBlockCapacity * upperStrideWords * 4 }

    /// Words of a sign code (bits1).
    public var signCodeWords: Int { (dimensions + 63) / 64 }
    /// Bytes of one vector's code: int8 bytes (and under l2 the squared length
    /// after them), or sign-code words; 0 without quantization.
    public var codeStrideBytes: Int {
        switch quantization {
        case .none: return 0
        case .int8: return sx_sq8_code_bytes(dimensions, metric == .l2)
        case .bits1: return signCodeWords * 8
        }
    }
    public var codeRegionBytes: Int { capacity * codeStrideBytes }

    public init(dimensions: Int, metric: Metric, parameters: HNSWParameters, capacity: Int,
                quantization: Quantization = .none) throws(IndexError) {
        guard (1...Self.maximumDimensions).contains(dimensions) else {
            throw .invalidParameter("dimensions must be in 1...\(Self.maximumDimensions), got \(dimensions)")
        }
        guard (1...Self.maximumCapacity).contains(capacity) else {
            throw .invalidParameter("capacity must be in 1...\(Self.maximumCapacity), got \(capacity)")
        }
        try parameters.validate()
        self.dimensions = dimensions
        self.metric = metric
        self.parameters = parameters
        self.capacity = capacity
        self.quantization = quantization
    }
}

extension HNSWLayout {
    /// Copies a vector into `query` (paddedDimensions long), normalised when the
    /// metric compares directions, zero-padded.
    func prepare(_ input: UnsafeBufferPointer<Float>, into query: UnsafeMutablePointer<Float>) {
        for index in 0..<dimensions { query[index] = input[index] }
        for index in dimensions..<paddedDimensions { query[index] = 0 }
        if metric.normalizesVectors {
            VectorMath.normalize(UnsafeMutableBufferPointer(start: query, count: dimensions))
        }
    }

    /// The float16 form a vector is stored in (normalised first for cosine):
    /// what the storage layer logs and later writes with `HNSWIndex.writeVector`.
    /// Depends on the layout alone, so a write is encoded outside every lock.
    public func storedForm(_ input: UnsafeBufferPointer<Float>) throws(IndexError) -> [UInt16] {
        guard input.count == dimensions else { throw .dimensionMismatch(expected: dimensions, actual: input.count) }
        guard VectorMath.isFinite(input) else { throw .nonFiniteVector }
        let prepared = UnsafeMutablePointer<Float>.allocate(capacity: paddedDimensions)
        defer { prepared.deallocate() }
        prepare(input, into: prepared)
        return [UInt16](unsafeUninitializedCapacity: dimensions) { buffer, count in
            if let base = buffer.baseAddress { HalfConversion.toHalf(prepared, base, count: dimensions) }
            count = dimensions
        }
    }
}

/// The regions an index lives in. Anonymous for a purely in-memory index;
/// file-backed (copy-on-write over a checkpoint) when the storage layer opens one.
public struct HNSWRegions: Sendable {
    public let vectors: MemoryRegion
    public let level0: MemoryRegion
    public let nodeInfo: MemoryRegion
    public let upper: MemoryRegion
    /// One code per slot, when the layout quantizes (nil otherwise).
    public let codes: MemoryRegion?

    public init(vectors: MemoryRegion, level0: MemoryRegion, nodeInfo: MemoryRegion, upper: MemoryRegion,
                codes: MemoryRegion? = nil) {
        self.vectors = vectors
        self.level0 = level0
        self.nodeInfo = nodeInfo
        self.upper = upper
        self.codes = codes
    }

    public static func anonymous(for layout: HNSWLayout) throws(IndexError) -> HNSWRegions {
        HNSWRegions(
            vectors: try .anonymous(reservedBytes: layout.vectorRegionBytes),
            level0: try .anonymous(reservedBytes: layout.level0RegionBytes),
            nodeInfo: try .anonymous(reservedBytes: layout.nodeInfoRegionBytes),
            upper: try .anonymous(reservedBytes: layout.upperRegionBytes),
            codes: layout.quantization.usesCodes ? try .anonymous(reservedBytes: layout.codeRegionBytes) : nil)
    }
}

/// What a quantized index's codes mean, fitted on a sample of its vectors
/// (in their stored form: normalised for cosine): per dimension the int8
/// range (x ≈ low + step · code) and the centre that sign codes are taken around.
public struct QuantizerParameters: Codable, Sendable, Equatable {
    public var low: [Float]
    public var step: [Float]
    public var center: [Float]
    /// Vectors the fit saw; a collection that outgrows it is refitted.
    public var sampleCount: Int

    /// Each dimension's range over the sample, widened by a twentieth on both
    /// sides: later vectors a little outside it still encode without clipping.
    public static func fit(rows: Int, dimensions: Int, vector: (Int, UnsafeMutablePointer<Float>) -> Void) -> QuantizerParameters {
        precondition(rows > 0 && dimensions > 0, "a fit needs a sample")
        var minimum = [Float](repeating: .infinity, count: dimensions)
        var maximum = [Float](repeating: -.infinity, count: dimensions)
        var sum = [Double](repeating: 0, count: dimensions)
        let row = UnsafeMutablePointer<Float>.allocate(capacity: dimensions)
        defer { row.deallocate() }
        for index in 0..<rows {
            vector(index, row)
            for d in 0..<dimensions {
                minimum[d] = min(minimum[d], row[d])
                maximum[d] = max(maximum[d], row[d])
                sum[d] += Double(row[d])
            }
        }
        var low = [Float](repeating: 0, count: dimensions)
        var step = [Float](repeating: 0, count: dimensions)
        for d in 0..<dimensions {
            let margin = max((maximum[d] - minimum[d]) / 20, 1e-6)
            low[d] = minimum[d] - margin
            step[d] = (maximum[d] + margin - low[d]) / 255
        }
        return QuantizerParameters(low: low, step: step, center: sum.map { Float($0 / Double(rows)) }, sampleCount: rows)
    }
}

/// The scalar state that, with the regions, fully describes an index. Persisted
/// in checkpoints; everything else is in the flat arrays.
public struct HNSWState: Sendable, Equatable, Codable {
    /// Slots at or above this were never used.
    public var slotHighWater: UInt32 = 0
    public var entrySlot: UInt32 = 0
    /// -1 when the index is empty.
    public var maxLevel: Int32 = -1
    public var upperBlocksUsed: UInt32 = 0
    public var insertCounter: UInt64 = 0
    /// The codes' parameters once fitted (quantized layouts only).
    public var quantizer: QuantizerParameters?

    public init() {}
    public init(slotHighWater: UInt32, entrySlot: UInt32, maxLevel: Int32, upperBlocksUsed: UInt32, insertCounter: UInt64,
                quantizer: QuantizerParameters? = nil) {
        self.quantizer = quantizer
        self.slotHighWater = slotHighWater
        self.entrySlot = entrySlot
        self.maxLevel = maxLevel
        self.upperBlocksUsed = upperBlocksUsed
        self.insertCounter = insertCounter
    }
}

public struct SearchHit: Sendable, Equatable {
    public var slot: UInt32
    public var distance: Float

    public init(slot: UInt32, distance: Float) {
        self.slot = slot
        self.distance = distance
    }
}

/// A predicate on slot ids, evaluated during traversal. `estimatedMatches`
/// (when the caller knows it, e.g. from a payload index) and `candidates` (an
/// explicit list of every matching slot) let the planner pick an exact scan.
public struct SlotFilter {
    public let matches: (UInt32) -> Bool
    public let estimatedMatches: Int?
    /// The slots that can match, read only when the planner chooses an exact
    /// scan: a payload index counts a filter's matches exactly and cheaply,
    /// but listing half a million of them would cost more than the graph walk.
    let candidateList: (() -> [UInt32])?
    /// What a listed candidate must still pass (for candidates that are the
    /// matches exactly, only what can change under the list: liveness).
    let candidateMatches: (UInt32) -> Bool

    public init(estimatedMatches: Int? = nil, candidates: [UInt32]? = nil, matches: @escaping (UInt32) -> Bool) {
        self.matches = matches
        self.estimatedMatches = estimatedMatches ?? candidates?.count
        self.candidateList = candidates.map { list in { list } }
        self.candidateMatches = matches
    }

    /// At most `matchCount` slots can match; `candidates` lists them, sorted,
    /// on demand, and each listed slot is checked by `candidateMatches`.
    public init(matchCount: Int, candidates: @escaping () -> [UInt32], candidateMatches: @escaping (UInt32) -> Bool,
                matches: @escaping (UInt32) -> Bool) {
        self.matches = matches
        self.estimatedMatches = matchCount
        self.candidateList = candidates
        self.candidateMatches = candidateMatches
    }

    var hasCandidates: Bool { candidateList != nil }
}

public enum SearchStrategy: String, Sendable {
    /// The planner decides (graph, or exact scan when it is cheaper or the filter is selective).
    case auto
    case graph
    case exact
}

public struct SearchOutcome: Sendable {
    public var hits: [SearchHit]
    public var usedExactScan: Bool
    public var distanceComputations: Int
}
