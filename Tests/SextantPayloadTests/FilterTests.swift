import SextantPayload
import Testing

@Suite struct MetadataCodecTests {
    @Test func roundTripsAndFindsKeys() throws {
        let metadata: Metadata = ["a": .string("x"), "n": .int(-3), "f": .double(2.5), "b": .bool(true), "ü": .string("ß")]
        let bytes = MetadataCodec.encode(metadata)
        #expect(try bytes.withUnsafeBytes { try MetadataCodec.decode($0) } == metadata)
        #expect(bytes.withUnsafeBytes { MetadataCodec.value(of: "n", in: $0) } == .int(-3))
        #expect(bytes.withUnsafeBytes { MetadataCodec.value(of: "missing", in: $0) } == nil)
        // A damaged buffer is an error, not a crash.
        #expect(throws: PayloadError.self) { try Array(bytes.prefix(bytes.count - 3)).withUnsafeBytes { try MetadataCodec.decode($0) } }
    }

    @Test func validationBounds() {
        #expect(throws: PayloadError.self) { try MetadataCodec.validate(["": .int(1)]) }
        #expect(throws: PayloadError.self) { try MetadataCodec.validate(["$x": .int(1)]) }
        #expect(throws: PayloadError.self) { try MetadataCodec.validate(["x": .double(.nan)]) }
        #expect(throws: PayloadError.self) { try MetadataCodec.validate(["x": .string(String(repeating: "a", count: 70_000))]) }
        let many = Dictionary(uniqueKeysWithValues: (0..<300).map { ("k\($0)", MetadataValue.int(1)) })
        #expect(throws: PayloadError.self) { try MetadataCodec.validate(many) }
    }
}

@Suite struct FilterTests {
    let record: Metadata = ["section": .string("web"), "size": .int(489), "ratio": .double(0.5), "ok": .bool(true)]

    @Test func operatorsMatchChromaSemantics() {
        #expect(WhereFilter.compare(key: "section", op: .eq, value: .string("web")).matches(record))
        #expect(!WhereFilter.compare(key: "section", op: .eq, value: .string("net")).matches(record))
        #expect(WhereFilter.compare(key: "size", op: .gt, value: .int(400)).matches(record))
        #expect(WhereFilter.compare(key: "size", op: .lte, value: .double(489.0)).matches(record))
        #expect(WhereFilter.compare(key: "ratio", op: .lt, value: .int(1)).matches(record))
        #expect(!WhereFilter.compare(key: "section", op: .gt, value: .int(1)).matches(record), "range needs a number")
        #expect(WhereFilter.compare(key: "ok", op: .eq, value: .bool(true)).matches(record))
        #expect(!WhereFilter.compare(key: "ok", op: .eq, value: .int(1)).matches(record), "bool is not int")
        // $ne / $nin also match records that lack the key (Chroma >= 0.5.12); the rest need the key.
        #expect(WhereFilter.compare(key: "absent", op: .ne, value: .int(1)).matches(record))
        #expect(WhereFilter.membership(key: "absent", negated: true, values: [.int(1)]).matches(record))
        #expect(!WhereFilter.compare(key: "absent", op: .eq, value: .int(1)).matches(record))
        #expect(!WhereFilter.membership(key: "absent", negated: false, values: [.int(1)]).matches(record))
        #expect(WhereFilter.membership(key: "section", negated: false, values: [.string("net"), .string("web")]).matches(record))
        #expect(!WhereFilter.membership(key: "section", negated: true, values: [.string("web")]).matches(record))
        #expect(WhereFilter.and([.compare(key: "ok", op: .eq, value: .bool(true)), .compare(key: "size", op: .gte, value: .int(489))]).matches(record))
        #expect(WhereFilter.or([.compare(key: "ok", op: .eq, value: .bool(false)), .compare(key: "size", op: .gte, value: .int(489))]).matches(record))
        #expect(!WhereFilter.or([.compare(key: "ok", op: .eq, value: .bool(false)), .compare(key: "size", op: .gt, value: .int(489))]).matches(record))
    }

    @Test func malformedFiltersNameTheOffendingPart() {
        #expect(throws: PayloadError.invalidFilter("where.$and: needs at least one clause")) { try WhereFilter.and([]).validate() }
        #expect(throws: PayloadError.invalidFilter("where.$or[1].size.$gt: operand must be a number, got \"x\"")) {
            try WhereFilter.or([.compare(key: "a", op: .eq, value: .int(1)), .compare(key: "size", op: .gt, value: .string("x"))]).validate()
        }
        #expect(throws: PayloadError.self) { try WhereFilter.membership(key: "a", negated: false, values: [.int(1), .string("x")]).validate() }
        #expect(throws: PayloadError.self) { try WhereFilter.membership(key: "a", negated: true, values: []).validate() }
        var deep = WhereFilter.compare(key: "a", op: .eq, value: .int(1))
        for _ in 0..<20 { deep = .and([deep]) }
        #expect(throws: PayloadError.self) { try deep.validate() }
        #expect(throws: PayloadError.self) { try DocumentFilter.contains("").validate() }
        let long = MetadataValue.string(String(repeating: "ý", count: 40_000))  // 80,000 bytes: longer than any stored value
        #expect(throws: PayloadError.invalidFilter("where.name.$eq: string exceeds 65536 bytes")) {
            try WhereFilter.compare(key: "name", op: .eq, value: long).validate()
        }
        #expect(throws: PayloadError.invalidFilter("where.name.$nin: string exceeds 65536 bytes")) {
            try WhereFilter.membership(key: "name", negated: true, values: [.string("a"), long]).validate()
        }
    }

    @Test func documentFilters() {
        let text = Array("curl is a command line tool".utf8)
        text.withUnsafeBytes { document in
            #expect(DocumentFilter.contains("command line").matches(document))
            #expect(!DocumentFilter.contains("Command").matches(document), "case-sensitive, like Chroma")
            #expect(DocumentFilter.notContains("wget").matches(document))
            #expect(DocumentFilter.and([.contains("curl"), .notContains("wget")]).matches(document))
            #expect(DocumentFilter.or([.contains("wget"), .contains("tool")]).matches(document))
        }
        #expect(!DocumentFilter.contains("x").matches(nil))
        #expect(DocumentFilter.notContains("x").matches(nil))
    }
}
