import NIOCore
import SwiftProtobuf

/// Decodes a WriteRequest one record at a time, so that the thread decoding a
/// 1,000-record batch can pause between records (`pace`) instead of holding a
/// core for the whole batch. On 2 cores saturated by queries, an unbroken
/// stretch of write work ran until the next scheduler tick (4 ms at 250 Hz)
/// while a query waited, which set the query p99 during ingest.
///
/// The result is the message SwiftProtobuf would decode: the top-level fields
/// are split by their wire tags, the records decoded one by one, every other
/// field decoded together.
public enum WriteRequestDecoding {
    /// Field number of `records` in `WriteRequest` (proto/sextant.proto).
    static let recordsField: UInt64 = 2

    /// Splits the body: the records' encodings, and every other field as one
    /// message. Cheap (a walk over tags and lengths, no decoding).
    public struct Split: Sendable {
        public var others: Sextant_V1_WriteRequest
        public var recordBytes: [[UInt8]]

        /// Decodes the records, calling `pace` before each one.
        public func records(pace: () -> Void = {}) throws(ProtocolError) -> [Sextant_V1_Record] {
            var records: [Sextant_V1_Record] = []
            records.reserveCapacity(recordBytes.count)
            for bytes in recordBytes {
                pace()
                do { records.append(try Sextant_V1_Record(serializedBytes: bytes)) } catch {
                    throw .invalid("record \(records.count) does not decode: \(error)")
                }
            }
            return records
        }
    }

    public static func split(_ buffer: ByteBuffer) throws(ProtocolError) -> Split {
        let bytes = buffer.withUnsafeReadableBytes { Array($0) }
        var others: [UInt8] = []
        var recordBytes: [[UInt8]] = []
        var position = 0
        while position < bytes.count {
            let fieldStart = position
            let tag = try varint(bytes, &position)
            let field = tag >> 3
            guard field > 0 else { throw .invalid("body does not decode as WriteRequest: field number 0") }
            switch tag & 7 {
            case 0:
                _ = try varint(bytes, &position)
            case 1:
                position += 8
            case 2:
                let length = try varint(bytes, &position)
                guard length <= UInt64(bytes.count - position) else {
                    throw .invalid("body does not decode as WriteRequest: field \(field) runs past the end")
                }
                if field == recordsField {
                    // Bounded before anything is copied: a frame of millions of
                    // empty records must not become millions of arrays.
                    guard recordBytes.count < ProtocolLimits.maximumBatchRecords else {
                        throw .invalid("batch exceeds \(ProtocolLimits.maximumBatchRecords) records")
                    }
                    recordBytes.append(Array(bytes[position..<(position + Int(length))]))
                    position += Int(length)
                    continue
                }
                position += Int(length)
            case 5:
                position += 4
            default:
                throw .invalid("body does not decode as WriteRequest: wire type \(tag & 7) of field \(field)")
            }
            guard position <= bytes.count else { throw .invalid("body does not decode as WriteRequest: truncated field \(field)") }
            others.append(contentsOf: bytes[fieldStart..<position])
        }
        do {
            return Split(others: try Sextant_V1_WriteRequest(serializedBytes: others), recordBytes: recordBytes)
        } catch {
            throw .invalid("body does not decode as WriteRequest: \(error)")
        }
    }

    private static func varint(_ bytes: [UInt8], _ position: inout Int) throws(ProtocolError) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while position < bytes.count {
            let byte = bytes[position]
            position += 1
            value |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
            guard shift < 64 else { break }
        }
        throw .invalid("body does not decode as WriteRequest: malformed varint")
    }
}

/// The encoding side: a WriteRequest serialised one record at a time, pausing
/// between records (`pace`), byte-compatible with SwiftProtobuf's (fields may
/// come in any order on the wire). A client on a background thread (an ingest
/// worker, a load generator's writer) encodes a 1,000-record batch in pieces
/// instead of holding a core for a scheduler tick.
public enum WriteRequestEncoding {
    public static func encode(_ request: Sextant_V1_WriteRequest, pace: () -> Void,
                              allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var others = request
        others.records = []
        let head: [UInt8] = (try? others.serializedBytes()) ?? []
        var buffer = allocator.buffer(capacity: head.count + request.records.count * 256)
        buffer.writeBytes(head)
        for record in request.records {
            pace()
            let bytes: [UInt8] = (try? record.serializedBytes()) ?? []
            buffer.writeInteger(UInt8(truncatingIfNeeded: WriteRequestDecoding.recordsField << 3 | 2))
            var length = UInt64(bytes.count)
            while length >= 0x80 {
                buffer.writeInteger(UInt8(truncatingIfNeeded: length) | 0x80)
                length >>= 7
            }
            buffer.writeInteger(UInt8(length))
            buffer.writeBytes(bytes)
        }
        return buffer
    }
}
