import Foundation
import SextantPayload
import SextantStorage
import SextantTestSupport
import Testing

/// Declared metadata indexes: filtered queries and gets answer the same
/// records as without them (exact for selective filters, never fewer than k
/// when k match), facets count the same from the index as from the records,
/// and the index is rebuilt at open and kept through the WAL's replay.
@Suite struct PayloadIndexStorageTests {
    static func records(_ count: Int, seed: UInt64, prefix: String = "p") -> [RecordInput] {
        var generator = SeededGenerator(seed: seed)
        let vectors = randomVectors(count: count, dimensions: 16, seed: seed)
        return (0..<count).map { index in
            // bucket: 0 for half the records, 1 for a twentieth, 2 for one in two hundred, 3 otherwise.
            let draw = Double.random(in: 0..<1, using: &generator)
            let bucket: Int64 = draw < 0.5 ? 0 : draw < 0.55 ? 1 : draw < 0.555 ? 2 : 3
            return RecordInput(id: "\(prefix)\(index)", vector: vectors[index], document: "d\(index)",
                               metadata: ["bucket": .int(bucket), "section": .string(["a", "b", "c"][index % 3]),
                                          "price": .double(Double(index % 1_000) / 10)])
        }
    }

    static let filters: [WhereFilter] = [
        .eq("bucket", .int(2)), .eq("bucket", .int(1)), .eq("bucket", .int(0)),
        .and([.eq("section", .string("b")), .lt("price", .double(5))]),
        .in("section", [.string("a"), .string("c")]),
        .and([.eq("bucket", .int(1)), .gte("price", .int(50))]),
    ]

    /// The exact filtered top k by brute force over the live records.
    static func exact(_ collection: Collection, _ query: [Float], _ filter: WhereFilter, k: Int) throws -> [String] {
        let all = try collection.get(filter: filter, include: [.vectors])
        return all.map { record -> (String, Float) in
            (record.id, zip(record.vector ?? [], query).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) })
        }.sorted { $0.1 < $1.1 }.prefix(k).map(\.0)
    }

    @Test func filteredQueriesAndFacetsMatchTheUnindexedAnswers() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        try await withEngine(directory) { engine in
            let (indexed, _) = try await engine.create(CollectionConfiguration(
                name: "indexed", dimension: 16, metric: .l2, payloadIndexes: ["bucket", "section", "price"]))
            let (plain, _) = try await engine.create(CollectionConfiguration(name: "plain", dimension: 16, metric: .l2))
            let records = Self.records(6_000, seed: 1)
            for collection in [indexed, plain] {
                try await collection.write(.add(Array(records[0..<3_000])))
                try await collection.write(.add(Array(records[3_000...])))
                try await collection.write(.upsert(Self.records(300, seed: 2)))  // new metadata for p0..p299
                try await collection.write(.delete(ids: (1_000..<1_300).map { "p\($0)" }))
                try await collection.write(.update([RecordInput(id: "p2000", metadata: ["bucket": .int(2)])], ignoreMissing: false))
            }
            let queries = randomVectors(count: 10, dimensions: 16, seed: 9)
            for filter in Self.filters {
                let matching = try plain.get(filter: filter, include: []).count
                #expect(try indexed.get(filter: filter, include: []).map(\.id) == plain.get(filter: filter, include: []).map(\.id),
                        "get in slot order: \(filter)")
                for query in queries {
                    let found = try indexed.query([query], k: 10, filter: filter).first?.map(\.id) ?? []
                    #expect(found.count == min(10, matching), "never fewer than k when k match: \(filter)")
                    if matching <= 2_048 {  // answered by an exact scan of the index's matches
                        #expect(found == (try Self.exact(indexed, query, filter, k: 10)), "exact: \(filter)")
                    }
                }
                for field in ["section", "bucket", "price"] {
                    let fromIndex = try indexed.facets(field: field, filter: filter)
                    let fromRecords = try plain.facets(field: field, filter: filter)
                    #expect(fromIndex.indexed && !fromRecords.indexed)
                    #expect(fromIndex.matched == fromRecords.matched && fromIndex.values == fromRecords.values, "\(field) within \(filter)")
                    #expect(fromIndex.minimum == fromRecords.minimum && fromIndex.maximum == fromRecords.maximum
                            && fromIndex.numbers == fromRecords.numbers)
                }
            }
            let sections = try indexed.facets(field: "section")
            let holding = try indexed.get(filter: .in("section", [.string("a"), .string("b"), .string("c")]), include: []).count
            #expect(sections.matched == indexed.count && sections.values.map(\.count).reduce(0, +) == holding)
        }
        // Rebuilt at open from the records and the WAL.
        try await withEngine(directory) { engine in
            let indexed = try #require(engine.collection(named: "indexed"))
            let plain = try #require(engine.collection(named: "plain"))
            #expect(indexed.configuration.payloadIndexes == ["bucket", "section", "price"])
            for filter in Self.filters {
                #expect(try indexed.facets(field: "section", filter: filter).values == plain.facets(field: "section", filter: filter).values)
            }
            try await indexed.write(.delete(ids: ["p2000"]))
            #expect(try indexed.get(filter: .eq("bucket", .int(2)), include: []).map(\.id)
                    == plain.get(filter: .eq("bucket", .int(2)), include: []).map(\.id).filter { $0 != "p2000" })
            await #expect(throws: StorageError.self) {
                _ = try await engine.create(CollectionConfiguration(name: "bad", dimension: 4, payloadIndexes: ["a", "a"]))
            }
            #expect(throws: StorageError.self) { try indexed.facets(field: "section", limit: 0) }
        }
    }
}

/// A filter comparing a field with a type its records never held is refused
/// by name, not answered with nothing; the types survive a checkpoint.
@Suite struct FieldTypeTests {
    @Test func mismatchedFiltersAreRefusedByName() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        try await withEngine(directory) { engine in
            let (collection, _) = try await engine.create(CollectionConfiguration(name: "typed", dimension: 4, metric: .l2))
            let vectors = randomVectors(count: 3, dimensions: 4, seed: 1)
            try await collection.write(.add([
                RecordInput(id: "a", vector: vectors[0], metadata: ["value_eur": .string("2100000"), "n": .int(3), "open": .bool(true)]),
                RecordInput(id: "b", vector: vectors[1], metadata: ["value_eur": .string("900"), "n": .double(2.5)]),
            ]))
            func refusal(_ filter: WhereFilter) -> String? {
                do {
                    _ = try collection.get(filter: filter)
                    _ = try collection.query([vectors[2]], k: 2, filter: filter)
                    return nil
                } catch StorageError.invalidArgument(let message) {
                    return message
                } catch {
                    return "unexpected \(error)"
                }
            }
            #expect(refusal(.gt("value_eur", .int(1_000_000)))?.contains("'value_eur' holds text, and $gt compares numbers") == true)
            #expect(refusal(.eq("n", .string("3")))?.contains("'n' holds integers and decimals") == true)
            #expect(refusal(.in("open", [.int(1)]))?.contains("'open' holds booleans") == true)
            #expect(refusal(.and([.eq("n", .int(3)), .lt("value_eur", .int(5))])) != nil, "found inside $and")
            // What can match passes: numbers of either kind, $ne, fields never written, #id.
            #expect(refusal(.eq("n", .double(3))) == nil && refusal(.ne("value_eur", .int(1))) == nil)
            #expect(refusal(.gt("missing", .int(1))) == nil && refusal(.in(WhereFilter.idKey, [.string("a")])) == nil)
            #expect(try collection.get(filter: .eq("n", .double(3))).map(\.id) == ["a"])
            try await collection.checkpoint()
            // A number written under the field makes ranges on it meaningful.
            try await collection.write(.upsert([RecordInput(id: "c", vector: vectors[2], metadata: ["value_eur": .int(2_100_000)])]))
            #expect(try collection.get(filter: .gt("value_eur", .int(1_000_000))).map(\.id) == ["c"])
        }
        try await withEngine(directory) { engine in
            let collection = try #require(engine.collection(named: "typed"))
            #expect(throws: StorageError.self) { try collection.get(filter: .eq("open", .string("yes"))) }
            #expect(try collection.get(filter: .gt("value_eur", .int(1_000_000))).map(\.id) == ["c"])
        }
    }
}

/// Indexes added to a collection that already holds records, by a call or by
/// the collection itself once a field is filtered on often enough: answers
/// unchanged, the index in use, and the change durable through the WAL and a
/// checkpoint.
@Suite struct PayloadIndexChangeTests {
    @Test func indexesAddedLaterAnswerAsBeforeAndSurviveReopens() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let records = PayloadIndexStorageTests.records(4_000, seed: 3)
        var before: [String: [String]] = [:]
        try await withEngine(directory) { engine in
            let (collection, _) = try await engine.create(CollectionConfiguration(name: "later", dimension: 16, metric: .l2))
            try await collection.write(.add(records))
            for filter in PayloadIndexStorageTests.filters {
                before["\(filter)"] = try collection.get(filter: filter, include: []).map(\.id)
            }
            #expect(!(try collection.facets(field: "bucket")).indexed)
            try await collection.setPayloadIndexes(["bucket", "section"])
            #expect(collection.configuration.payloadIndexes == ["bucket", "section"])
            #expect(try collection.facets(field: "bucket").indexed && collection.facets(field: "section").indexed)
            for filter in PayloadIndexStorageTests.filters {
                #expect(try collection.get(filter: filter, include: []).map(\.id) == before["\(filter)"], "\(filter)")
            }
            // Kept by later writes like a declared index.
            try await collection.write(.update([RecordInput(id: "p7", metadata: ["bucket": .int(2)])], ignoreMissing: false))
            #expect(try collection.get(filter: .eq("bucket", .int(2)), include: []).map(\.id).contains("p7"))
            await #expect(throws: StorageError.self) { try await collection.setPayloadIndexes(["bucket", "bucket"]) }
        }
        // Replayed from the WAL: the configuration entry rebuilds the index at its point.
        try await withEngine(directory) { engine in
            let collection = try #require(engine.collection(named: "later"))
            #expect(collection.configuration.payloadIndexes == ["bucket", "section"])
            #expect(try collection.facets(field: "section").indexed)
            #expect(try collection.get(filter: .eq("bucket", .int(2)), include: []).map(\.id).contains("p7"))
            try await collection.setPayloadIndexes([])
            #expect(!(try collection.facets(field: "section")).indexed)
            try await collection.setPayloadIndexes(["price"])
            try await collection.checkpoint()
        }
        // From the checkpoint's manifest.
        try await withEngine(directory) { engine in
            let collection = try #require(engine.collection(named: "later"))
            #expect(collection.configuration.payloadIndexes == ["price"])
            #expect(try collection.facets(field: "price").indexed && !(try collection.facets(field: "bucket")).indexed)
        }
    }

    @Test func aFieldFilteredOftenEnoughInALargeCollectionIndexesItself() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        try await withEngine(directory) { engine in
            let (collection, _) = try await engine.create(CollectionConfiguration(name: "auto", dimension: 16, metric: .l2))
            let records = PayloadIndexStorageTests.records(3_000, seed: 4)
            try await collection.write(.add(records))
            let query = randomVectors(count: 1, dimensions: 16, seed: 5)[0]
            // Below the size bound nothing is indexed, however often a field is used.
            collection.automaticIndexRecords.store(10_000, ordering: .relaxed)
            for _ in 0..<(2 * StorageLimits.automaticPayloadIndexFilterUses) {
                _ = try collection.query([query], k: 5, filter: .eq("section", .string("a")))
            }
            try await Task.sleep(for: .milliseconds(200))
            #expect(collection.configuration.payloadIndexes.isEmpty)
            // Past it, the uses of one field trigger one background build; other fields stay as they are.
            collection.automaticIndexRecords.store(2_000, ordering: .relaxed)
            let expected = try collection.get(filter: .eq("bucket", .int(1)), include: []).map(\.id)
            for use in 0..<StorageLimits.automaticPayloadIndexFilterUses {
                if use % 2 == 0 {
                    _ = try collection.query([query], k: 5, filter: .eq("bucket", .int(1)))
                } else {
                    _ = try collection.get(filter: .eq("bucket", .int(1)), include: [])
                }
            }
            let deadline = Date().addingTimeInterval(30)
            while collection.configuration.payloadIndexes != ["bucket"] && Date() < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(collection.configuration.payloadIndexes == ["bucket"])
            #expect(try collection.facets(field: "bucket").indexed)
            #expect(try collection.get(filter: .eq("bucket", .int(1)), include: []).map(\.id) == expected)
            // Off means off.
            collection.automaticIndexRecords.store(0, ordering: .relaxed)
            for _ in 0..<(2 * StorageLimits.automaticPayloadIndexFilterUses) {
                _ = try collection.get(filter: .eq("price", .double(1)), include: [])
            }
            try await Task.sleep(for: .milliseconds(200))
            #expect(collection.configuration.payloadIndexes == ["bucket"])
        }
        try await withEngine(directory) { engine in
            let reopened = try #require(engine.collection(named: "auto"))
            #expect(reopened.configuration.payloadIndexes == ["bucket"], "durable")
        }
    }
}
