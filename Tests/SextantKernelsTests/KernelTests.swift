import SextantKernels
import SextantTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Plain float64 references the SIMD kernels are held to.
private func referenceDot(_ q: [Float], _ v: [UInt16]) -> Double {
    zip(q, v).reduce(0.0) { $0 + Double($1.0) * Double(HalfConversion.toFloat($1.1)) }
}

private func referenceL2(_ q: [Float], _ v: [UInt16]) -> Double {
    zip(q, v).reduce(0.0) {
        let d = Double($1.0) - Double(HalfConversion.toFloat($1.1))
        return $0 + d * d
    }
}

/// Error bound for a float32 accumulation of n terms: proportional to the sum of
/// magnitudes, not to the (possibly cancelling) result.
private func tolerance(_ q: [Float], _ v: [UInt16], squared: Bool) -> Double {
    let magnitude = zip(q, v).reduce(0.0) {
        let a = Double($1.0), b = Double(HalfConversion.toFloat($1.1))
        return $0 + (squared ? (a - b) * (a - b) : abs(a * b))
    }
    return 1e-5 * magnitude * Double(max(1, q.count)).squareRoot() + 1e-6
}

private let dimensionsUnderTest = [1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 100, 384, 385, 1000, 1536]

@Suite struct DistanceKernelTests {
    @Test(arguments: DistanceKernels.supportedLevels)
    func halfKernelsMatchFloat64Reference(level: DistanceKernels.Level) {
        let kernels = DistanceKernels.kernels(for: level)
        var random = SeededGenerator(seed: 42)
        for dimensions in dimensionsUnderTest {
            for scale: Float in [1e-3, 1, 300, 30_000] {
                let q = (0..<dimensions).map { _ in Float.random(in: -scale...scale, using: &random) }
                let vf = (0..<dimensions).map { _ in Float.random(in: -scale...scale, using: &random) }
                let v = vf.map(HalfConversion.toHalf)
                let dot = q.withUnsafeBufferPointer { qp in
                    v.withUnsafeBufferPointer { kernels.dotHalf(qp.baseAddress, $0.baseAddress, dimensions) }
                }
                let l2 = q.withUnsafeBufferPointer { qp in
                    v.withUnsafeBufferPointer { kernels.l2SquaredHalf(qp.baseAddress, $0.baseAddress, dimensions) }
                }
                #expect(abs(Double(dot) - referenceDot(q, v)) <= tolerance(q, v, squared: false),
                        "dot \(level) d=\(dimensions) scale=\(scale)")
                #expect(abs(Double(l2) - referenceL2(q, v)) <= tolerance(q, v, squared: true),
                        "l2 \(level) d=\(dimensions) scale=\(scale)")
            }
        }
    }

    @Test(arguments: DistanceKernels.supportedLevels)
    func floatKernelsMatchFloat64Reference(level: DistanceKernels.Level) {
        let kernels = DistanceKernels.kernels(for: level)
        var random = SeededGenerator(seed: 7)
        for dimensions in dimensionsUnderTest {
            let a = (0..<dimensions).map { _ in Float.random(in: -10...10, using: &random) }
            let b = (0..<dimensions).map { _ in Float.random(in: -10...10, using: &random) }
            let dot = a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { kernels.dotFloat(ap.baseAddress, $0.baseAddress, dimensions) } }
            let l2 = a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { kernels.l2SquaredFloat(ap.baseAddress, $0.baseAddress, dimensions) } }
            let refDot = zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            let refL2 = zip(a, b).reduce(0.0) { $0 + (Double($1.0) - Double($1.1)) * (Double($1.0) - Double($1.1)) }
            let magnitude = zip(a, b).reduce(0.0) { $0 + abs(Double($1.0) * Double($1.1)) }
            #expect(abs(Double(dot) - refDot) <= 1e-5 * magnitude + 1e-6)
            #expect(abs(Double(l2) - refL2) <= 1e-5 * refL2 + 1e-6)
        }
    }

    @Test(arguments: DistanceKernels.supportedLevels)
    func edgeCases(level: DistanceKernels.Level) {
        let kernels = DistanceKernels.kernels(for: level)
        for dimensions in dimensionsUnderTest {
            let zeros = [Float](repeating: 0, count: dimensions)
            let zeroHalves = [UInt16](repeating: 0, count: dimensions)
            let big = [Float](repeating: 65_504, count: dimensions)  // largest finite half
            let bigHalves = big.map(HalfConversion.toHalf)
            let negativeBig = big.map { -$0 }
            zeros.withUnsafeBufferPointer { z in
                zeroHalves.withUnsafeBufferPointer { zh in
                    #expect(kernels.dotHalf(z.baseAddress, zh.baseAddress, dimensions) == 0)
                    #expect(kernels.l2SquaredHalf(z.baseAddress, zh.baseAddress, dimensions) == 0)
                }
            }
            let dot = big.withUnsafeBufferPointer { b in bigHalves.withUnsafeBufferPointer { kernels.dotHalf(b.baseAddress, $0.baseAddress, dimensions) } }
            let expectedDot = Double(dimensions) * 65_504 * 65_504
            #expect(abs(Double(dot) - expectedDot) <= 1e-5 * expectedDot)
            let l2 = negativeBig.withUnsafeBufferPointer { b in bigHalves.withUnsafeBufferPointer { kernels.l2SquaredHalf(b.baseAddress, $0.baseAddress, dimensions) } }
            let expectedL2 = Double(dimensions) * 131_008 * 131_008
            #expect(abs(Double(l2) - expectedL2) <= 1e-5 * expectedL2)
        }
    }

    @Test(arguments: DistanceKernels.supportedLevels)
    func batchKernelAgreesWithSingleKernels(level: DistanceKernels.Level) {
        let kernels = DistanceKernels.kernels(for: level)
        var random = SeededGenerator(seed: 3)
        let dimensions = 48
        let stride = 64
        let rows = 50
        var base = [UInt16](repeating: 0, count: rows * stride)
        for index in 0..<(rows * stride) { base[index] = HalfConversion.toHalf(Float.random(in: -1...1, using: &random)) }
        let query = (0..<dimensions).map { _ in Float.random(in: -1...1, using: &random) }
        let slots: [UInt32] = [0, 49, 7, 7, 23]
        for metric in Metric.allCases {
            var out = [Float](repeating: .nan, count: slots.count)
            query.withUnsafeBufferPointer { q in
                base.withUnsafeBufferPointer { b in
                    slots.withUnsafeBufferPointer { s in
                        out.withUnsafeMutableBufferPointer {
                            kernels.batchHalf(q.baseAddress, b.baseAddress, stride, s.baseAddress, slots.count, dimensions,
                                              metric.kernelCode, $0.baseAddress)
                        }
                    }
                }
            }
            for (index, slot) in slots.enumerated() {
                let single = query.withUnsafeBufferPointer { q in
                    base.withUnsafeBufferPointer {
                        kernels.distance(metric, query: q.baseAddress!, stored: $0.baseAddress! + Int(slot) * stride,
                                         dimensions: dimensions)
                    }
                }
                #expect(out[index] == single)
            }
        }
    }

    @Test func allLevelsAgreeWithEachOther() {
        var random = SeededGenerator(seed: 11)
        let dimensions = 384
        let q = (0..<dimensions).map { _ in Float.random(in: -1...1, using: &random) }
        let v = (0..<dimensions).map { _ in HalfConversion.toHalf(Float.random(in: -1...1, using: &random)) }
        let values = DistanceKernels.supportedLevels.map { level -> Float in
            let k = DistanceKernels.kernels(for: level)
            return q.withUnsafeBufferPointer { qp in v.withUnsafeBufferPointer { k.dotHalf(qp.baseAddress, $0.baseAddress, dimensions) } }
        }
        for value in values { #expect(abs(value - values[0]) <= 1e-4) }
    }

    @Test func selectedLevelIsTheBestSupported() {
        #expect(DistanceKernels.supportedLevels.first == .scalar)
        if getenv("SEXTANT_KERNELS") == nil {
            #expect(DistanceKernels.selected.level == DistanceKernels.supportedLevels.last)
        }
    }
}

@Suite struct HalfConversionTests {
    @Test func scalarConversionMatchesSwiftFloat16() {
        var random = SeededGenerator(seed: 5)
        var values: [Float] = [0, -0, 1, -1, 65_504, 65_520, 65_519.99, 1e-8, 5.96e-8, 2.98e-8, 6.1e-5, 6.09e-5,
                               .infinity, -.infinity, 1e10, -1e10, 0.1, 1.0 / 3.0, 2049, 2051, 4097]
        for _ in 0..<20_000 { values.append(Float(bitPattern: UInt32(truncatingIfNeeded: random.next()))) }
        for value in values where !value.isNaN {
            #expect(HalfConversion.toHalf(value) == Float16(value).bitPattern, "\(value)")
        }
        #expect(Float16(bitPattern: HalfConversion.toHalf(.nan)).isNaN)
        for bits in UInt16.min...UInt16.max {
            let expected = Float(Float16(bitPattern: bits))
            let actual = HalfConversion.toFloat(bits)
            #expect(actual == expected || (actual.isNaN && expected.isNaN))
        }
    }

    @Test func arrayConversionMatchesScalar() {
        var random = SeededGenerator(seed: 9)
        let values = (0..<1003).map { _ in Float.random(in: -70_000...70_000, using: &random) }
        var halves = [UInt16](repeating: 0, count: values.count)
        values.withUnsafeBufferPointer { s in halves.withUnsafeMutableBufferPointer { HalfConversion.toHalf(s.baseAddress!, $0.baseAddress!, count: values.count) } }
        #expect(halves == values.map(HalfConversion.toHalf))
        var back = [Float](repeating: 0, count: values.count)
        halves.withUnsafeBufferPointer { s in back.withUnsafeMutableBufferPointer { HalfConversion.toFloat(s.baseAddress!, $0.baseAddress!, count: values.count) } }
        #expect(back == halves.map(HalfConversion.toFloat))
    }
}

@Suite struct CRC32CTests {
    @Test func knownAnswer() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8]()) == 0)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
    }

    @Test func hardwareMatchesPortableAndChains() {
        var random = SeededGenerator(seed: 1)
        for length in [1, 7, 8, 9, 63, 64, 65, 1000, 4096, 100_003] {
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            let whole = CRC32C.checksum(bytes)
            #expect(bytes.withUnsafeBytes { CRC32C.portableChecksum($0) } == whole)
            let split = length / 3
            let first = CRC32C.checksum(Array(bytes[..<split]))
            #expect(CRC32C.checksum(Array(bytes[split...]), continuing: first) == whole)
        }
    }
}
