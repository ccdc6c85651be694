import SextantPayload
import Testing

/// The payload index must give exactly the slots a filter matches (or a
/// superset it says is one) and exact facet counts, through replacements,
/// deletes and type changes, against evaluating the filter on every record.
@Suite struct PayloadIndexTests {
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state ^ (state >> 29)
        }
    }

    static let sections = ["games", "net", "devel", "doc", "sound"]

    static func metadata(_ generator: inout Generator) -> Metadata {
        var metadata: Metadata = [:]
        if Int.random(in: 0..<10, using: &generator) > 0 { metadata["section"] = .string(sections.randomElement(using: &generator) ?? "x") }
        switch Int.random(in: 0..<10, using: &generator) {
        case 0: break
        case 1: metadata["size"] = .double(Double(Int.random(in: 0..<500, using: &generator)) + 0.5)
        case 2: metadata["size"] = .string("big")  // another type in the same field
        default: metadata["size"] = .int(Int64.random(in: 0..<500, using: &generator))
        }
        metadata["free"] = .bool(Bool.random(using: &generator))
        metadata["note"] = .string("n\(Int.random(in: 0..<3, using: &generator))")  // not indexed
        return metadata
    }

    static func filters(_ generator: inout Generator) -> [WhereFilter] {
        let bound = Int64.random(in: 0..<500, using: &generator)
        return [
            .eq("section", .string("games")),
            .in("section", [.string("net"), .string("doc")]),
            .gt("size", .int(bound)), .gte("size", .double(Double(bound))), .lt("size", .int(bound)), .lte("size", .int(bound)),
            .eq("size", .int(bound)), .eq("size", .double(Double(bound) + 0.5)), .eq("size", .string("big")),
            .eq("free", .bool(true)),
            .and([.eq("section", .string("devel")), .lt("size", .int(bound))]),
            .or([.eq("section", .string("sound")), .gte("size", .int(bound))]),
            .and([.eq("free", .bool(false)), .eq("note", .string("n1"))]),  // a conjunct on an unindexed field
            .ne("section", .string("games")),
            .or([.eq("section", .string("doc")), .eq("note", .string("n2"))]),
        ]
    }

    @Test func candidatesEqualEvaluatingEveryRecord() {
        var generator = Generator(state: 42)
        var index = PayloadIndex(fields: ["section", "size", "free"])
        var records: [UInt32: Metadata] = [:]
        func write(_ slot: UInt32, _ metadata: Metadata?) {
            records[slot] = metadata
            if let metadata {
                MetadataCodec.encode(metadata).withUnsafeBytes { index.set(slot: slot, metadata: $0) }
            } else {
                index.set(slot: slot, metadata: nil)
            }
        }
        for round in 0..<6 {
            // Out-of-order slots, replacements, deletes: enough to merge the ordered list several times.
            for _ in 0..<3_000 {
                let slot = UInt32.random(in: 0..<4_000, using: &generator)
                write(slot, Int.random(in: 0..<8, using: &generator) == 0 ? nil : Self.metadata(&generator))
            }
            index.compact()
            for filter in Self.filters(&generator) {
                let expected = records.filter { filter.matches($0.value) }.keys.sorted()
                guard let (slots, exact) = index.candidates(filter) else {
                    // Only filters the index cannot narrow at all may answer nil.
                    #expect(filter == .ne("section", .string("games")) || filter.keys.contains("note"), "round \(round): \(filter)")
                    continue
                }
                #expect(slots == slots.sorted() && Set(slots).count == slots.count, "sorted, unique")
                if exact {
                    #expect(slots == expected, "round \(round): \(filter): \(slots.count) vs \(expected.count)")
                } else {
                    #expect(Set(expected).isSubset(of: Set(slots)), "round \(round): \(filter) superset")
                }
            }
            // Facets: counts of each section among a filter's matches, and the numeric range.
            let among = records.filter { WhereFilter.eq("free", .bool(true)).matches($0.value) }.keys.sorted()
            var counts: [String: Int] = [:]
            for slot in among { if case .string(let section)? = records[slot]?["section"] { counts[section, default: 0] += 1 } }
            let facet = index.facet("section", among: among, limit: 10) ?? []
            #expect(facet.count == counts.count)
            for entry in facet {
                guard case .string(let section) = entry.value else { Issue.record("a string facet holds \(entry.value)"); continue }
                #expect(counts[section] == entry.count)
            }
            #expect(zip(facet, facet.dropFirst()).allSatisfy { $0.count >= $1.count }, "most common first")
            let numbers = records.values.compactMap { metadata -> Double? in
                switch metadata["size"] {
                case .int(let value)?: return Double(value)
                case .double(let value)?: return value
                default: return nil
                }
            }
            let range = index.numberRange("size", among: nil)
            #expect(range?.minimum == numbers.min() && range?.maximum == numbers.max() && range?.count == numbers.count)
            #expect(index.facet("note", among: nil, limit: 5) == nil, "an unindexed field has no facet here")
        }
    }
}
