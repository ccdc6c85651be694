import Foundation
import SextantClient
import SextantPayload
import SextantProtocol
import SextantTestSupport
import Testing

/// Lexical and hybrid search over the wire: a real engine process, the Swift
/// client, the text index built at create and by a modify, kept across kill -9.
@Suite struct SearchModeTests {
    static let documents = [
        "road resurfacing tender for the northern district",
        "bridge inspection and repair services",
        "school cleaning contract, three years",
        "hospital catering and kitchen supplies",
        "software licences for the city council",
        "road salt supply for winter maintenance",
        "electric vehicles for the municipal fleet",
        "security guards for the town hall",
    ]

    @Test func lexicalAndHybridThroughTheClient() async throws {
        try await withEngine { _, client in
            let handle = try await client.createCollection(name: "tenders", dimension: 8, metric: .l2, textIndex: TextIndexOptions())
            #expect(handle.info.textIndex == TextIndexOptions())
            let data = vectors(Self.documents.count, dimension: 8, seed: 3)
            try await handle.add(ids: Self.documents.indices.map { "d\($0)" }, vectors: data, documents: Self.documents)

            let roads = try await handle.search(mode: .lexical, texts: ["roads", "cleaning school"], k: 3)
            #expect(Set(roads[0].map(\.id)) == ["d0", "d5"], "stemmed: roads matches road")
            #expect(roads[0].allSatisfy { ($0.score ?? 0) > 0 && $0.distance == nil })
            #expect(roads[1].first?.id == "d2")

            let filtered = try await handle.search(
                mode: .lexical, texts: ["road"], k: 5, whereDocument: .contains("winter"))
            #expect(filtered[0].map(\.id) == ["d5"])

            // Hybrid: the vector of d4 and the words of d1 bring both to the top two.
            let hybrid = try await handle.search(mode: .hybrid, vectors: [data[4]], texts: ["bridge inspection"], k: 2)
            #expect(Set(hybrid[0].map(\.id)) == ["d1", "d4"])
            #expect(hybrid[0].allSatisfy { $0.score != nil })

            // Visible as soon as acknowledged: an upsert changes the words at once.
            try await handle.upsert(ids: ["d7"], vectors: [data[7]], documents: ["road markings and signs"])
            let after = try await handle.search(mode: .lexical, texts: ["road"], k: 5)
            #expect(Set(after[0].map(\.id)) == ["d0", "d5", "d7"])

            // Bad requests: typed errors, and the connection goes on.
            await expectCode(.invalidArgument) { _ = try await handle.search(mode: .lexical, texts: [], k: 3) }
            await expectCode(.invalidArgument) {
                _ = try await handle.search(mode: .hybrid, vectors: [data[0], data[1]], texts: ["road"], k: 3)
            }
            await expectCode(.invalidArgument) {
                _ = try await handle.search(mode: .lexical, texts: [String(repeating: "word ", count: 5_000)], k: 3)
            }
            let plain = try await client.createCollection(name: "plain", dimension: 8, metric: .l2)
            try await plain.add(ids: ["p0"], vectors: [data[0]], documents: ["road works"])
            await expectCode(.failedPrecondition) { _ = try await plain.search(mode: .lexical, texts: ["road"], k: 3) }

            // Built on an existing collection by a modify, and dropped again.
            let built = try await plain.modify(textIndex: .build(TextIndexOptions(k1: 0.9, b: 0.4)))
            #expect(built.info.textIndex == TextIndexOptions(k1: 0.9, b: 0.4))
            #expect(try await plain.search(mode: .lexical, texts: ["road"], k: 3)[0].map(\.id) == ["p0"])
            await expectCode(.invalidArgument) { _ = try await plain.modify(textIndex: .build(TextIndexOptions(k1: -1, b: 0.5))) }
            let dropped = try await plain.modify(textIndex: .drop)
            #expect(dropped.info.textIndex == nil)
            await expectCode(.failedPrecondition) { _ = try await plain.search(mode: .lexical, texts: ["road"], k: 3) }

            // Indexed metadata fields, likewise added to and dropped from an existing collection.
            try await plain.upsert(ids: ["p0", "p1"], vectors: [data[0], data[1]], metadatas: [["kind": .string("road")], ["kind": .string("rail")]])
            #expect(!(try await plain.facets(field: "kind")).indexed)
            let fields = try await plain.modify(payloadIndexes: ["kind"])
            #expect(fields.info.payloadIndexes == ["kind"])
            let facets = try await plain.facets(field: "kind")
            #expect(facets.indexed && facets.values.map(\.count) == [1, 1])
            await expectCode(.invalidArgument) { _ = try await plain.modify(payloadIndexes: ["kind", "kind"]) }
            #expect(try await plain.modify(payloadIndexes: []).info.payloadIndexes.isEmpty)
            #expect(try await client.heartbeat() > 0)
        }
    }

    @Test func lexicalResultsSurviveKillNine() async throws {
        let directory = TemporaryDirectory("sextant-engine")
        defer { directory.remove() }
        let data = vectors(600, dimension: 8, seed: 9)
        let texts = (0..<600).map { "\(Self.documents[$0 % Self.documents.count]) lot \($0 % 7) batch \($0 / 100)" }
        let before: [[RecordResult]]
        do {
            let engine = try EngineProcess(dataRoot: directory.path)
            let client = try await SextantClient.connect(to: engine.address)
            let handle = try await client.createCollection(name: "crash", dimension: 8, metric: .l2, textIndex: TextIndexOptions())
            for start in stride(from: 0, to: 600, by: 100) {
                try await handle.add(ids: (start..<(start + 100)).map { "c\($0)" }, vectors: Array(data[start..<(start + 100)]),
                                     documents: Array(texts[start..<(start + 100)]))
            }
            try await handle.delete(ids: (0..<50).map { "c\($0)" })
            before = try await handle.search(mode: .lexical, texts: ["road salt", "bridge 3", "security 5"], k: 10)
            engine.kill9()
            await client.close()
        }
        let engine = try EngineProcess(dataRoot: directory.path)
        let client = try await SextantClient.connect(to: engine.address)
        let after = try await client.getCollection(name: "crash").search(mode: .lexical, texts: ["road salt", "bridge 3", "security 5"], k: 10)
        #expect(after == before)
        #expect(before.allSatisfy { $0.count == 10 })
        await client.close()
        engine.stop()
    }
}
