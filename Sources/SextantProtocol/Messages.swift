import Foundation
import NIOCore
import SwiftProtobuf

public typealias Vectors = Sextant_V1_Vectors

extension Sextant_V1_Vectors {
    /// Packs float32 rows (all of `dimension` values) little-endian, as f32 or f16.
    public init(rows: [[Float]], dimension: Int, encoding: Sextant_V1_VectorEncoding = .f32, pace: () -> Void = {}) {
        self.init()
        self.dimension = UInt32(dimension)
        count = UInt32(rows.count)
        self.encoding = encoding
        var bytes = [UInt8]()
        bytes.reserveCapacity(rows.count * dimension * (encoding == .f16 ? 2 : 4))
        for row in rows {
            pace()
            for value in row {
                if encoding == .f16 {
                    withUnsafeBytes(of: Float16(value).bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
                } else {
                    withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
                }
            }
        }
        data = Data(bytes)
    }

    /// Unpacks into float32 rows; throws if the byte count does not match the shape.
    public func rows(pace: () -> Void = {}) throws(ProtocolError) -> [[Float]] {
        let width = encoding == .f16 ? 2 : 4
        let expected = Int(count) * Int(dimension) * width
        guard data.count == expected else {
            throw .invalid("vectors: \(data.count) bytes for \(count) × \(dimension) \(width == 2 ? "f16" : "f32") values (expected \(expected))")
        }
        let dimension = Int(self.dimension)
        return data.withUnsafeBytes { raw in
            (0..<Int(count)).map { row in
                pace()
                return (0..<dimension).map { column in
                    let offset = (row * dimension + column) * width
                    if width == 2 {
                        return Float(Float16(bitPattern: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt16.self))))
                    }
                    return Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
                }
            }
        }
    }
}

public enum ProtocolError: Error, Equatable, CustomStringConvertible {
    case invalid(String)
    public var description: String {
        switch self {
        case .invalid(let message): return message
        }
    }
}

/// protobuf ⇄ ByteBuffer.
public enum MessageCodec {
    public static func encode(_ message: some SwiftProtobuf.Message, allocator: ByteBufferAllocator = ByteBufferAllocator())
        -> ByteBuffer
    {
        do {
            let bytes: [UInt8] = try message.serializedBytes()
            var buffer = allocator.buffer(capacity: bytes.count)
            buffer.writeBytes(bytes)
            return buffer
        } catch {
            // Serialising a well-formed message in memory cannot fail; an empty body is the safe answer.
            return allocator.buffer(capacity: 0)
        }
    }

    public static func decode<M: SwiftProtobuf.Message>(_ type: M.Type, from buffer: ByteBuffer) throws(ProtocolError) -> M {
        do {
            return try buffer.withUnsafeReadableBytes { raw in
                try M(serializedBytes: Array(raw))
            }
        } catch {
            throw .invalid("body does not decode as \(M.protoMessageName): \(error)")
        }
    }
}
