import Foundation
import NIOCore
import SextantPayload
import SextantProtocol
import SextantTestSupport
import SwiftProtobuf
import Testing

/// Writes are decoded (engine) and encoded (client) record by record so that
/// the work can pause between records; both must agree byte for byte in
/// meaning with SwiftProtobuf's own codec.
@Suite struct WriteRequestCodingTests {
    private func sample(records count: Int, seed: UInt64) -> Sextant_V1_WriteRequest {
        var generator = SeededGenerator(seed: seed)
        var request = Sextant_V1_WriteRequest()
        request.collection.name = "tenders"
        request.ignoreMissing = true
        request.vectorRecordIndices = (0..<UInt32(count)).map { $0 }
        request.records = (0..<count).map { index in
            var record = Sextant_V1_Record()
            record.id = "record-\(index)-" + String(repeating: "é", count: Int.random(in: 0...300, using: &generator))
            if index % 3 != 0 { record.document = String(repeating: "word ", count: Int.random(in: 0...200, using: &generator)) }
            if index % 2 == 0 {
                let metadata: Metadata = ["section": .string("web"), "rank": .int(Int64(index)), "ok": .bool(true)]
                record.metadata = metadata.wire
            }
            return record
        }
        request.vectors = Sextant_V1_Vectors(
            rows: (0..<count).map { _ in (0..<8).map { _ in Float.random(in: -1...1, using: &generator) } }, dimension: 8)
        return request
    }

    private func buffer(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }

    @Test(arguments: [0, 1, 7, 1_000])
    func splitDecodingMatchesSwiftProtobuf(records: Int) throws {
        let request = sample(records: records, seed: UInt64(records) + 1)
        let bytes: [UInt8] = try request.serializedBytes()
        let split = try WriteRequestDecoding.split(buffer(bytes))
        var paces = 0
        var decoded = split.others
        decoded.records = try split.records { paces += 1 }
        #expect(decoded == request)
        #expect(paces == records, "one pause point per record")
    }

    /// The hand decoder of records gives what SwiftProtobuf plus the metadata
    /// conversion gives, on generated requests and on corrupted ones (where it
    /// may refuse more, never accept what the generated code refuses or
    /// differ from it).
    @Test func handDecodedRecordsMatchSwiftProtobuf() throws {
        func viaSwiftProtobuf(_ record: Sextant_V1_Record, _ index: Int) throws -> WireRecord {
            WireRecord(id: record.id, document: record.hasDocument ? record.document : nil,
                       metadata: record.hasMetadata ? try Metadata(wire: record.metadata, path: "records[\(index)].metadata") : nil)
        }
        var request = sample(records: 400, seed: 3)
        request.records[1].metadata.fields["empty"] = Sextant_V1_Value()  // no type: refused by both
        for index in 2..<400 where index % 5 == 0 {
            var value = Sextant_V1_Value()
            value.doubleValue = Double(index) / 7
            request.records[index].metadata.fields["weight"] = value
            value.intValue = -Int64(index)
            request.records[index].metadata.fields["delta"] = value
        }
        let split = try WriteRequestDecoding.split(buffer(try request.serializedBytes()))
        let reference = try split.records()
        for (index, bytes) in split.recordBytes.enumerated() {
            let one = WriteRequestDecoding.Split(others: split.others, recordBytes: [bytes])
            let expected = Result { try viaSwiftProtobuf(reference[index], index) }
            let found = Result { try one.wireRecords()[0] }
            switch (expected, found) {
            case (.success(let a), .success(let b)): #expect(a == b, "record \(index)")
            case (.failure, .failure): break
            default: Issue.record("record \(index): \(expected) vs \(found)")
            }
        }
        var generator = SeededGenerator(seed: 23)
        var refusedMore = 0
        for round in 0..<3_000 {
            var bytes = split.recordBytes[round % split.recordBytes.count]
            guard !bytes.isEmpty else { continue }
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
            }
            let generated = Result { try viaSwiftProtobuf(try Sextant_V1_Record(serializedBytes: bytes), 0) }
            let hand = Result { try WriteRequestDecoding.Split(others: split.others, recordBytes: [bytes]).wireRecords()[0] }
            switch (generated, hand) {
            case (.success(let a), .success(let b)): #expect(a == b, "corrupted round \(round)")
            case (.failure, .success(let b)): Issue.record("round \(round): accepted \(b) that SwiftProtobuf refuses")
            case (.success, .failure): refusedMore += 1
            case (.failure, .failure): break
            }
        }
        #expect(refusedMore < 300, "refuses \(refusedMore) records SwiftProtobuf accepts")
    }

    @Test(arguments: [0, 1, 300])
    func pacedEncodingDecodesToTheSameRequest(records: Int) throws {
        let request = sample(records: records, seed: 99)
        var paces = 0
        let encoded = WriteRequestEncoding.encode(request) { paces += 1 }
        let bytes = encoded.withUnsafeReadableBytes { Array($0) }
        #expect(try Sextant_V1_WriteRequest(serializedBytes: bytes) == request)
        #expect(paces == records)
        let split = try WriteRequestDecoding.split(encoded)
        var decoded = split.others
        decoded.records = try split.records()
        #expect(decoded == request)
    }

    /// Truncations and corruptions of a real request: a typed error or a
    /// request, never a crash, and never a request SwiftProtobuf would refuse.
    @Test func malformedBodiesGiveATypedError() throws {
        let bytes: [UInt8] = try sample(records: 20, seed: 5).serializedBytes()
        var generator = SeededGenerator(seed: 17)
        var rejected = 0
        for round in 0..<2_000 {
            var corrupt = bytes
            if round % 2 == 0 {
                corrupt = Array(corrupt.prefix(Int.random(in: 0..<corrupt.count, using: &generator)))
            } else {
                for _ in 0..<Int.random(in: 1...4, using: &generator) {
                    corrupt[Int.random(in: 0..<corrupt.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
                }
            }
            do {
                let split = try WriteRequestDecoding.split(buffer(corrupt))
                var decoded = split.others
                decoded.records = try split.records()
                #expect((try? Sextant_V1_WriteRequest(serializedBytes: corrupt)) != nil, "accepted only what SwiftProtobuf accepts")
            } catch {
                rejected += 1
            }
        }
        #expect(rejected > 500)
        #expect(throws: ProtocolError.self) { try WriteRequestDecoding.split(buffer([0x12, 0xff, 0xff, 0xff, 0xff, 0x0f])) }
        #expect(throws: ProtocolError.self) { try WriteRequestDecoding.split(buffer([0x13])) }  // wire type 3 (group)
        // One record past the batch bound, each empty: refused by count, not decoded.
        let tooMany: [UInt8] = (0..<(2 * (ProtocolLimits.maximumBatchRecords + 1))).map { $0 % 2 == 0 ? 0x12 : 0x00 }
        #expect(throws: ProtocolError.invalid("batch exceeds \(ProtocolLimits.maximumBatchRecords) records")) {
            try WriteRequestDecoding.split(buffer(tooMany))
        }
    }
}
