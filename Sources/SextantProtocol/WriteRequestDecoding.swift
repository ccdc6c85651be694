import NIOCore
import SextantPayload
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

        public init(others: Sextant_V1_WriteRequest, recordBytes: [[UInt8]]) {
            self.others = others
            self.recordBytes = recordBytes
        }

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
        var reader = WireRecordDecoder.Reader(bytes: bytes, position: 0, end: bytes.count)
        var others: [UInt8] = []
        var recordBytes: [[UInt8]] = []
        while !reader.atEnd {
            let fieldStart = reader.position
            let tag = try reader.varint()
            guard tag >> 3 > 0 else { throw .invalid("body does not decode as WriteRequest: field number 0") }
            if tag == recordsField << 3 | 2 {
                // Bounded before anything is copied: a frame of millions of
                // empty records must not become millions of arrays.
                guard recordBytes.count < ProtocolLimits.maximumBatchRecords else {
                    throw .invalid("batch exceeds \(ProtocolLimits.maximumBatchRecords) records")
                }
                recordBytes.append(Array(bytes[try reader.delimited()]))
                continue
            }
            try reader.skip(wireType: tag & 7)
            others.append(contentsOf: bytes[fieldStart..<reader.position])
        }
        do {
            return Split(others: try Sextant_V1_WriteRequest(serializedBytes: others), recordBytes: recordBytes)
        } catch {
            throw .invalid("body does not decode as WriteRequest: \(error)")
        }
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

/// A record of a write as the engine needs it, decoded straight from its wire
/// bytes: SwiftProtobuf's generic decoding of the metadata map (a message per
/// value, then a conversion) was half of the engine's write-path CPU, CPU that
/// queries on a small host wait for.
public struct WireRecord: Sendable, Equatable {
    public var id: String
    public var document: String?
    public var metadata: Metadata?

    public init(id: String, document: String?, metadata: Metadata?) {
        self.id = id
        self.document = document
        self.metadata = metadata
    }
}

extension WriteRequestDecoding.Split {
    /// The records decoded by hand (`Record`, `Metadata`, `Value` of
    /// proto/sextant.proto with protobuf's rules: last value of a field wins,
    /// repeated messages merge, unknown fields are skipped), pausing before each.
    public func wireRecords(pace: () -> Void = {}) throws(ProtocolError) -> [WireRecord] {
        var records: [WireRecord] = []
        records.reserveCapacity(recordBytes.count)
        for (index, bytes) in recordBytes.enumerated() {
            pace()
            records.append(try WireRecordDecoder.record(bytes, path: "records[\(index)]"))
        }
        return records
    }
}

/// Protobuf's binary format for the three message types of a record, by hand.
enum WireRecordDecoder {
    struct Reader {
        let bytes: [UInt8]
        var position: Int
        let end: Int

        var atEnd: Bool { position >= end }

        mutating func varint() throws(ProtocolError) -> UInt64 {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while position < end {
                let byte = bytes[position]
                position += 1
                value |= UInt64(byte & 0x7f) << shift
                if byte & 0x80 == 0 { return value }
                shift += 7
                guard shift < 64 else { break }
            }
            throw .invalid("malformed varint")
        }

        /// The bounds of a length-delimited field's contents.
        mutating func delimited() throws(ProtocolError) -> Range<Int> {
            let length = try varint()
            guard length <= UInt64(end - position) else { throw .invalid("a field runs past its message") }
            let range = position..<(position + Int(length))
            position = range.upperBound
            return range
        }

        mutating func fixed64() throws(ProtocolError) -> UInt64 {
            guard end - position >= 8 else { throw .invalid("truncated fixed64") }
            var value: UInt64 = 0
            for offset in 0..<8 { value |= UInt64(bytes[position + offset]) << (8 * UInt64(offset)) }
            position += 8
            return value
        }

        mutating func skip(wireType: UInt64) throws(ProtocolError) {
            switch wireType {
            case 0: _ = try varint()
            case 1: _ = try fixed64()
            case 2: _ = try delimited()
            case 5:
                guard end - position >= 4 else { throw .invalid("truncated fixed32") }
                position += 4
            default: throw .invalid("unsupported wire type \(wireType)")
            }
        }

        func string(_ range: Range<Int>) throws(ProtocolError) -> String {
            guard let text = String(validating: bytes[range], as: UTF8.self) else {
                throw .invalid("record does not decode: a string is not UTF-8")
            }
            return text
        }
    }

    static func record(_ bytes: [UInt8], path: String) throws(ProtocolError) -> WireRecord {
        var reader = Reader(bytes: bytes, position: 0, end: bytes.count)
        var id = ""
        var document: String?
        var fields: [String: Value]?
        while !reader.atEnd {
            let tag = try reader.varint()
            switch (tag >> 3, tag & 7) {
            case (1, 2): id = try reader.string(try reader.delimited())
            case (2, 2): document = try reader.string(try reader.delimited())
            case (3, 2):
                let range = try reader.delimited()
                try metadata(bytes, range, into: &fields)
            case (let field, let wireType):
                guard field > 0 else { throw .invalid("record does not decode: field number 0") }
                try reader.skip(wireType: wireType)
            }
        }
        var metadata: Metadata?
        if let fields {
            var result = Metadata(minimumCapacity: fields.count)
            for (key, value) in fields {
                guard let decoded = value.decoded else { throw .invalid("\(path).metadata.\(key): value has no type") }
                result[key] = decoded
            }
            metadata = result
        }
        return WireRecord(id: id, document: document, metadata: metadata)
    }

    /// A Value as read so far (an empty one is an error once the record is done,
    /// as Metadata(wire:) has it).
    struct Value {
        var decoded: MetadataValue?
    }

    private static func metadata(_ bytes: [UInt8], _ range: Range<Int>, into fields: inout [String: Value]?) throws(ProtocolError) {
        var reader = Reader(bytes: bytes, position: range.lowerBound, end: range.upperBound)
        var result = fields ?? [:]
        while !reader.atEnd {
            let tag = try reader.varint()
            guard tag == (1 << 3 | 2) else {
                guard tag >> 3 > 0 else { throw .invalid("record does not decode: field number 0") }
                try reader.skip(wireType: tag & 7)
                continue
            }
            let entry = try reader.delimited()
            var entryReader = Reader(bytes: bytes, position: entry.lowerBound, end: entry.upperBound)
            var key = ""
            var value = Value()
            while !entryReader.atEnd {
                let entryTag = try entryReader.varint()
                switch (entryTag >> 3, entryTag & 7) {
                case (1, 2): key = try entryReader.string(try entryReader.delimited())
                case (2, 2):
                    let valueRange = try entryReader.delimited()
                    value = try Self.value(bytes, valueRange, merging: value)
                case (let field, let wireType):
                    guard field > 0 else { throw .invalid("record does not decode: field number 0") }
                    try entryReader.skip(wireType: wireType)
                }
            }
            result[key] = value
        }
        fields = result
    }

    private static func value(_ bytes: [UInt8], _ range: Range<Int>, merging previous: Value) throws(ProtocolError) -> Value {
        var reader = Reader(bytes: bytes, position: range.lowerBound, end: range.upperBound)
        var value = previous
        while !reader.atEnd {
            let tag = try reader.varint()
            switch (tag >> 3, tag & 7) {
            case (1, 2): value.decoded = .string(try reader.string(try reader.delimited()))
            case (2, 0): value.decoded = .int(Int64(bitPattern: try reader.varint()))
            case (3, 1): value.decoded = .double(Double(bitPattern: try reader.fixed64()))
            case (4, 0): value.decoded = .bool(try reader.varint() != 0)
            case (5, 2):
                // Rare and nested: the generated decoder reads it (packed or not, labels).
                let vectorRange = try reader.delimited()
                let wire: Sextant_V1_SparseVector
                do { wire = try Sextant_V1_SparseVector(serializedBytes: Array(bytes[vectorRange])) } catch {
                    throw .invalid("record does not decode: a sparse vector is malformed")
                }
                value.decoded = .sparseVector(try SparseVector(wire: wire, path: "sparse vector"))
            case (let field, let wireType):
                guard field > 0 else { throw .invalid("record does not decode: field number 0") }
                try reader.skip(wireType: wireType)
            }
        }
        return value
    }
}
