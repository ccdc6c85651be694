import CSextantKernels
import SextantKernels
import Synchronization

/// A quantized index's codes: one per slot in the codes region, the
/// parameters that give them meaning, and the kernels that read them. The
/// graph walk of `HNSWIndex` measures distance here; float16 vectors are read
/// only to rank the best candidates exactly.
///
/// The parameters are fitted once on a sample of the vectors written so far
/// (at the first link, or explicitly by a bulk loader) and refitted, with
/// every code re-encoded, if the index outgrows its sample many times over.
final class CodeBook: @unchecked Sendable {
    let quantization: Quantization
    let dimensions: Int
    let metricCode: UInt32
    let strideBytes: Int
    let words: Int
    let base: UnsafeMutablePointer<UInt8>
    let kernels: CodeKernels
    private let low: UnsafeMutablePointer<Float>
    private let step: UnsafeMutablePointer<Float>
    private let center: UnsafeMutablePointer<Float>
    private let fitted = Atomic<Bool>(false)
    private let fitLock = Mutex<QuantizerParameters?>(nil)

    init(layout: HNSWLayout, region: MemoryRegion, parameters: QuantizerParameters?, kernels: CodeKernels) {
        precondition(layout.quantization.usesCodes, "a code book for a quantized layout")
        precondition(region.reservedBytes >= layout.codeRegionBytes, "the codes region covers every slot")
        quantization = layout.quantization
        dimensions = layout.dimensions
        metricCode = layout.metric.kernelCode
        strideBytes = layout.codeStrideBytes
        words = layout.signCodeWords
        base = region.base.assumingMemoryBound(to: UInt8.self)
        self.kernels = kernels
        low = .allocate(capacity: dimensions)
        step = .allocate(capacity: dimensions)
        center = .allocate(capacity: dimensions)
        if let parameters { install(parameters) }
    }

    deinit {
        low.deallocate()
        step.deallocate()
        center.deallocate()
    }

    var isFitted: Bool { fitted.load(ordering: .acquiring) }
    var parameters: QuantizerParameters? { fitLock.withLock { $0 } }

    /// Installs fitted parameters; the caller re-encodes existing codes if any.
    func install(_ parameters: QuantizerParameters) {
        fitLock.withLock { current in store(parameters, &current) }
    }

    /// Fits once, under a lock: concurrent first links agree on one fit.
    func fitOnce(_ make: () -> QuantizerParameters) {
        guard !isFitted else { return }
        fitLock.withLock { current in
            guard current == nil else { return }
            store(make(), &current)
        }
    }

    /// Copies parameters into the arrays the kernels read; under `fitLock`.
    private func store(_ parameters: QuantizerParameters, _ current: inout QuantizerParameters?) {
        precondition(parameters.low.count == dimensions && parameters.step.count == dimensions
                         && parameters.center.count == dimensions, "parameters of another dimension")
        for d in 0..<dimensions {
            low[d] = parameters.low[d]
            step[d] = parameters.step[d]
            center[d] = parameters.center[d]
        }
        current = parameters
        fitted.store(true, ordering: .releasing)
    }

    @inline(__always) func code(_ slot: UInt32) -> UnsafeMutablePointer<UInt8> { base + Int(slot) * strideBytes }

    /// Writes `slot`'s code from its vector in stored form (`dimensions` floats).
    func encode(_ slot: UInt32, from vector: UnsafePointer<Float>) {
        assert(isFitted, "codes are written after the fit")
        let destination = code(slot)
        switch quantization {
        case .none: preconditionFailure("no codes without quantization")
        case .int8:
            sx_sq8_encode(vector, low, step, dimensions, destination)
            if metricCode == 1 {
                var squared: Float = 0
                for d in 0..<dimensions { squared += vector[d] * vector[d] }
                UnsafeMutableRawPointer(destination + sx_sq8_norm_offset(dimensions)).storeBytes(of: squared, as: Float.self)
            }
        case .bits1:
            let words = UnsafeMutableRawPointer(destination).assumingMemoryBound(to: UInt64.self)
            signCode(vector, into: words)
        }
    }

    private func signCode(_ vector: UnsafePointer<Float>, into words: UnsafeMutablePointer<UInt64>) {
        for w in 0..<self.words { words[w] = 0 }
        for d in 0..<dimensions where vector[d] < center[d] { words[d / 64] |= 1 << UInt64(d % 64) }
    }

    /// Prepares a float query (stored form) for `distances`.
    func prepare(_ vector: UnsafePointer<Float>, sq8: UnsafeMutablePointer<sx_sq8_query>, bits: UnsafeMutablePointer<UInt64>) {
        switch quantization {
        case .none: preconditionFailure("no codes without quantization")
        case .int8: sx_sq8_prepare(vector, low, step, dimensions, metricCode, sq8)
        case .bits1: signCode(vector, into: bits)
        }
    }

    /// Prepares a stored node as the query (neighbour selection compares nodes
    /// with each other): its code decoded, never its float16 vector, which may
    /// not be resident. `scratch` holds `dimensions` floats.
    func prepare(slot: UInt32, sq8: UnsafeMutablePointer<sx_sq8_query>, bits: UnsafeMutablePointer<UInt64>,
                 scratch: UnsafeMutablePointer<Float>) {
        switch quantization {
        case .none: preconditionFailure("no codes without quantization")
        case .int8: kernels.int8PrepareCode(code(slot), low, step, dimensions, metricCode, scratch, sq8)
        case .bits1:
            let source = UnsafeRawPointer(code(slot)).assumingMemoryBound(to: UInt64.self)
            for w in 0..<words { bits[w] = source[w] }
        }
    }

    /// Approximate distances from a prepared query to `count` slots' codes.
    @inline(__always)
    func distances(sq8: UnsafePointer<sx_sq8_query>, bits: UnsafePointer<UInt64>, _ slots: UnsafePointer<UInt32>, _ count: Int,
                   _ out: UnsafeMutablePointer<Float>) {
        switch quantization {
        case .none: preconditionFailure("no codes without quantization")
        case .int8: kernels.int8Batch(sq8, base, strideBytes, slots, count, out)
        case .bits1:
            kernels.bitsBatch(bits, UnsafeRawPointer(base).assumingMemoryBound(to: UInt64.self), strideBytes / 8, slots, count,
                              words, out)
        }
    }
}
