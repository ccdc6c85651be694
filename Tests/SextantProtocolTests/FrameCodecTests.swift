import Foundation
import NIOCore
import NIOEmbedded
import SextantPayload
import SextantProtocol
import SextantTestSupport
import SwiftProtobuf
import Testing

/// The decoder and every message type, fuzzed in-process (fast; many iterations).
@Suite struct DecoderFuzzTests {
    @Test func decoderNeverCrashesOnRandomStreams() throws {
        var generator = SeededGenerator(seed: 7)
        let iterations = Int(ProcessInfo.processInfo.environment["SEXTANT_FUZZ_ITERATIONS"] ?? "") ?? 300
        for _ in 0..<(iterations * 10) {
            let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(expectPreamble: Bool.random(using: &generator), maximumFrameBytes: 4_096)))
            var buffer = ByteBuffer()
            if Bool.random(using: &generator) { buffer.writeInteger(ProtocolLimits.preamble) }
            let count = Int.random(in: 0...600, using: &generator)
            buffer.writeBytes((0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) })
            _ = try? channel.writeInbound(buffer)
            while let _: FrameEvent = try? channel.readInbound() {}
            _ = try? channel.finish()
        }
    }

    @Test func messageDecodersRejectRandomBytesWithAnError() {
        var generator = SeededGenerator(seed: 8)
        let types: [any SwiftProtobuf.Message.Type] = [
            Sextant_V1_Hello.self, Sextant_V1_WriteRequest.self, Sextant_V1_QueryRequest.self, Sextant_V1_GetRequest.self,
            Sextant_V1_DeleteRequest.self, Sextant_V1_CreateCollectionRequest.self, Sextant_V1_Where.self,
        ]
        for _ in 0..<3_000 {
            let bytes = (0..<Int.random(in: 0...200, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            for type in types { _ = try? type.init(serializedBytes: bytes) }
        }
        // Shape checks on packed vectors are errors, not traps.
        var vectors = Sextant_V1_Vectors()
        vectors.dimension = 4
        vectors.count = 2
        vectors.data = Data(repeating: 0, count: 31)
        #expect(throws: ProtocolError.self) { _ = try vectors.rows() }
    }

    @Test func framesRoundTripThroughEncoderAndDecoder() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(expectPreamble: true)))
        var buffer = ByteBuffer()
        buffer.writeInteger(ProtocolLimits.preamble)
        let frame = Frame(header: FrameHeader(kind: .request, method: .query, requestID: 0xDEAD_BEEF, deadlineMilliseconds: 250),
                          body: ByteBuffer(bytes: [1, 2, 3]))
        FrameEncoder.write(frame, into: &buffer)
        // Deliver one byte at a time: the decoder must reassemble.
        for byte in buffer.readableBytesView { try channel.writeInbound(ByteBuffer(bytes: [byte])) }
        guard case .preamble = try #require(try channel.readInbound(as: FrameEvent.self)) else {
            Issue.record("expected the preamble first")
            return
        }
        guard case .frame(let decoded) = try #require(try channel.readInbound(as: FrameEvent.self)) else {
            Issue.record("expected a frame")
            return
        }
        #expect(decoded.header == frame.header)
        #expect(Array(decoded.body.readableBytesView) == [1, 2, 3])
    }
}

/// The shared vocabulary on the wire: what the client encodes, the engine decodes to the same value.
@Suite struct WireVocabularyTests {
    @Test func filtersAndMetadataRoundTrip() throws {
        let filter: WhereFilter = .and([
            .eq("section", .string("web")), .gte("year", .int(2020)), .lt("score", .double(0.5)),
            .or([.in("lang", [.string("en"), .string("de")]), .nin("draft", [.bool(true)])]), .ne("x", .int(-1)),
        ])
        #expect(try WhereFilter(wire: filter.wire) == filter)
        let document: DocumentFilter = .or([.contains("neural"), .and([.notContains("draft"), .contains("net")])])
        #expect(try DocumentFilter(wire: document.wire) == document)
        let metadata: Metadata = ["a": .string("x"), "b": .int(3), "c": .double(3), "d": .bool(false)]
        #expect(try Metadata(wire: metadata.wire, path: "metadata") == metadata)
        for include in [Include.all, .getDefault, .queryDefault, [], [.vectors]] {
            #expect(Include(wire: include.wire()) == include)
        }
    }

    @Test func untypedValuesAndUnknownOperatorsAreErrorsNamingThePath() {
        var metadata = Sextant_V1_Metadata()
        metadata.fields["year"] = Sextant_V1_Value()
        #expect(throws: ProtocolError.invalid("records[2].metadata.year: value has no type")) {
            _ = try Metadata(wire: metadata, path: "records[2].metadata")
        }
        var clause = Sextant_V1_Where()
        var comparison = Sextant_V1_Comparison()
        comparison.key = "year"
        comparison.operator = .UNRECOGNIZED(99)
        comparison.value = MetadataValue.int(1).wire
        clause.comparison = comparison
        #expect(throws: ProtocolError.invalid("where.year: unknown operator 99")) { _ = try WhereFilter(wire: clause) }
        #expect(throws: ProtocolError.invalid("where: empty clause")) { _ = try WhereFilter(wire: Sextant_V1_Where()) }
    }

    @Test func decodedFiltersAreValidatedByTheSharedRules() {
        let tooDeep = (0..<20).reduce(WhereFilter.eq("k", .int(1))) { inner, _ in .and([inner]) }
        #expect(throws: ProtocolError.self) {
            _ = try WireFilters.decode(hasWhere: true, tooDeep.wire, hasDocument: false, Sextant_V1_WhereDocument())
        }
        let rangeOnText = WhereFilter.gt("title", .string("b"))
        #expect(throws: ProtocolError.invalid("invalid filter: where.title.$gt: operand must be a number, got \"b\"")) {
            _ = try WireFilters.decode(hasWhere: true, rangeOnText.wire, hasDocument: false, Sextant_V1_WhereDocument())
        }
    }

    @Test func everyKnownMethodHasItsNumberAndName() {
        var names = Set<String>()
        for method in KnownMethod.allCases {
            #expect(Method(method).known == method)
            #expect(Method(method).description == method.name)
            names.insert(method.name)
        }
        #expect(names.count == KnownMethod.allCases.count)
        #expect(Method(rawValue: 999).known == nil)
        #expect(Method(rawValue: 999).description == "Method(999)")
    }

    @Test func tokenComparisonIsExact() {
        #expect(Tokens.equal("secret", "secret"))
        #expect(!Tokens.equal("secret", "secreT"))
        #expect(!Tokens.equal("secret", "secret\u{0}"))
        #expect(!Tokens.equal("", "secret"))
        #expect(Tokens.equal("", ""))
        // Lengths that differ by a multiple of 256 are still different.
        #expect(!Tokens.equal("a", "a" + String(repeating: "\u{0}", count: 256)))
    }
}
