import Foundation

/// The vectors of a Chroma HNSW segment folder, read from hnswlib's files
/// without hnswlib: `header.bin` gives the layout of `data_level0.bin`, whose
/// every element holds its level-0 links, its vector (float32) and its label.
/// Chroma stores cosine collections' vectors normalised; they are returned as
/// stored, which is what Chroma's own `get` answers.
public struct HNSWLibVectors: Sendable {
    public let dimension: Int
    public let count: Int
    /// label → element index.
    let elementByLabel: [UInt64: Int]
    let data: Data
    let elementSizeBytes: Int
    let vectorOffsetBytes: Int

    public struct Header: Sendable, Equatable {
        public var elementCount: Int
        public var elementSizeBytes: Int
        public var labelOffsetBytes: Int
        public var vectorOffsetBytes: Int
    }

    /// Chroma's hnswlib writes a 4-byte format version before hnswlib's own
    /// 96-byte header; older builds wrote the 96 bytes alone.
    public static func header(_ bytes: [UInt8]) throws(ChromaImportError) -> Header {
        let start: Int
        switch bytes.count {
        case 96: start = 0
        case 100: start = 4
        default: throw ChromaImportError.format("header.bin is \(bytes.count) bytes (96 or 100 expected)")
        }
        func u64(_ at: Int) -> UInt64 {
            var value: UInt64 = 0
            for index in 0..<8 { value |= UInt64(bytes[start + at + index]) << (8 * UInt64(index)) }
            return value
        }
        // offsetLevel0, max_elements, cur_element_count, size_data_per_element, label_offset, offset_data
        let count = u64(16), elementSize = u64(24), labelOffset = u64(32), vectorOffset = u64(40)
        guard count <= UInt64(Int32.max), elementSize <= 1 << 24, labelOffset + 8 <= elementSize, vectorOffset <= labelOffset,
              (labelOffset - vectorOffset) % 4 == 0
        else { throw ChromaImportError.format("header.bin describes an impossible layout (element \(elementSize) bytes, label at \(labelOffset), vector at \(vectorOffset))") }
        return Header(elementCount: Int(count), elementSizeBytes: Int(elementSize), labelOffsetBytes: Int(labelOffset),
                      vectorOffsetBytes: Int(vectorOffset))
    }

    public init(folder: String) throws {
        let headerBytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: folder + "/header.bin")))
        let header = try Self.header(headerBytes)
        data = try Data(contentsOf: URL(fileURLWithPath: folder + "/data_level0.bin"), options: .alwaysMapped)
        guard data.count >= header.elementCount * header.elementSizeBytes else {
            throw ChromaImportError.format("\(folder)/data_level0.bin holds \(data.count) bytes, \(header.elementCount) elements of \(header.elementSizeBytes) need more")
        }
        dimension = (header.labelOffsetBytes - header.vectorOffsetBytes) / 4
        count = header.elementCount
        elementSizeBytes = header.elementSizeBytes
        vectorOffsetBytes = header.vectorOffsetBytes
        var byLabel: [UInt64: Int] = [:]
        byLabel.reserveCapacity(count)
        data.withUnsafeBytes { raw in
            for element in 0..<header.elementCount {
                let label = raw.loadUnaligned(fromByteOffset: element * header.elementSizeBytes + header.labelOffsetBytes, as: UInt64.self)
                byLabel[UInt64(littleEndian: label)] = element
            }
        }
        elementByLabel = byLabel
    }

    public func vector(label: UInt64) -> [Float]? {
        guard let element = elementByLabel[label] else { return nil }
        let start = element * elementSizeBytes + vectorOffsetBytes
        return data.withUnsafeBytes { raw in
            (0..<dimension).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: start + 4 * $0, as: UInt32.self))) }
        }
    }
}
