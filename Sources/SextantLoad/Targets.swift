import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SextantClient
import SextantChroma
import SextantJSON
import SextantPayload

/// The engine over its binary protocol.
public final class SextantTarget: LoadTarget, @unchecked Sendable {
    public let name = "sextant"
    let client: SextantClient
    var handle: CollectionHandle?
    let ef: Int?

    var queries: [[Float]] = []
    var k = 10
    /// Lexical and hybrid queries send the public queries' text with their vectors.
    var texts: [String] = []
    var mode = SearchMode.semantic
    /// The collection is created with a text index (for a mode comparison).
    public var textIndex = false

    public init(client: SextantClient, ef: Int? = nil) {
        self.client = client
        self.ef = ef
    }

    /// The mode every query runs in from now on (set between phases, never during one).
    public func use(mode: SearchMode, texts: [String]) {
        self.mode = mode
        self.texts = texts
    }

    public func prepareQueries(_ queries: [[Float]], k: Int) throws {
        self.queries = queries
        self.k = k
    }

    public func prepare(collection: String, dimension: Int) async throws {
        if (try? await client.getCollection(name: collection)) != nil { try await client.deleteCollection(name: collection) }
        handle = try await client.createCollection(name: collection, dimension: dimension, metric: .cosine,
                                                   textIndex: textIndex ? TextIndexOptions() : nil)
    }

    private func collection() throws -> CollectionHandle {
        guard let handle else { throw SextantError(.failedPrecondition, "prepare() first") }
        return handle
    }

    public func upsert(_ batch: LoadBatch) async throws {
        try await collection().upsert(ids: batch.ids, vectors: batch.vectors, documents: batch.documents?.map { Optional($0) },
                                      metadatas: batch.metadatas.map { Optional($0) })
    }

    public func query(index: Int) async throws -> [String] {
        switch mode {
        case .semantic:
            return try await collection().query(vectors: [queries[index]], k: k, include: [.distances], ef: ef)[0].map(\.id)
        case .lexical:
            return try await collection().search(mode: .lexical, texts: [texts[index]], k: k, include: [])[0].map(\.id)
        case .hybrid:
            return try await collection().search(mode: .hybrid, vectors: [queries[index]], texts: [texts[index]], k: k,
                                                 include: [.distances], ef: ef)[0].map(\.id)
        }
    }

    public func waitUntilIndexed(records: Int) async throws {
        while true {
            let stats = try await client.stats().first { $0.name == (try? collection().name) }
            if let stats, stats.unindexedRecords == 0, stats.liveRecords == records { return }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    public func close() async { await client.close() }

    public func queryExecutor(forClient number: Int) -> (any TaskExecutor)? { client.executor(forCaller: number) }

    public func unindexedRecords() async -> Int? {
        guard let name = try? collection().name, let stats = try? await client.stats() else { return nil }
        return stats.first { $0.name == name }?.unindexedRecords
    }
}

/// A ChromaDB server through its REST API (/api/v2), as chromadb's HttpClient
/// uses it. Used by tools/compare to measure ChromaDB with the same harness.
public final class ChromaTarget: LoadTarget, @unchecked Sendable {
    public let name: String
    let http: HTTPClient
    let base: String
    var collectionID = ""
    /// When the server behind the REST API is Sextant, its engine: waiting for
    /// "all indexed" needs the engine's stats (ChromaDB's API has no such signal).
    let settleEngine: SextantClient?

    public init(url: String, label: String = "chromadb", settleEngine: SextantClient? = nil) {
        name = label
        self.settleEngine = settleEngine
        base = url.hasSuffix("/") ? String(url.dropLast()) : url
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    private var collections: String { base + "/api/v2/tenants/default_tenant/databases/default_database/collections" }

    private func request(_ method: HTTPMethod, _ url: String, _ body: JSONValue?) async throws -> JSONValue {
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "Content-Type", value: "application/json")
        if let body { request.body = .bytes(JSON.serializeBytes(body)) }
        let response = try await http.execute(request, timeout: .seconds(120))
        let bytes = try await response.body.collect(upTo: 256 << 20)
        let parsed = (try? JSON.parse(Array(bytes.readableBytesView))) ?? .null
        guard (200..<300).contains(Int(response.status.code)) else {
            throw SextantError(.unavailable, "\(method) \(url): HTTP \(response.status.code) \(JSON.serialize(parsed))")
        }
        return parsed
    }

    public func prepare(collection: String, dimension: Int) async throws {
        _ = try? await request(.DELETE, collections + "/" + collection, nil)
        let created = try await request(.POST, collections, .object([
            "name": .string(collection), "get_or_create": .bool(true),
            "metadata": .object(["hnsw:space": .string("cosine")]),
        ]))
        guard let id = created["id"]?.stringValue else { throw SextantError(.internal, "create returned no id") }
        collectionID = id
    }

    public func upsert(_ batch: LoadBatch) async throws {
        var body: [String: JSONValue] = [
            "ids": .array(batch.ids.map(JSONValue.string)),
            "embeddings": .array(batch.vectors.map { .array($0.map { .double(Double($0)) }) }),
            "metadatas": .array(batch.metadatas.map(ChromaGrammar.metadataJSON)),
        ]
        if let documents = batch.documents { body["documents"] = .array(documents.map(JSONValue.string)) }
        _ = try await request(.POST, collections + "/" + collectionID + "/upsert", .object(body))
    }

    var queryBodies: [[UInt8]] = []
    var queryURL = ""

    public func prepareQueries(_ queries: [[Float]], k: Int) throws {
        queryURL = collections + "/" + collectionID + "/query"
        queryBodies = queries.map { vector in
            JSON.serializeBytes(.object([
                "query_embeddings": .array([.array(vector.map { .double(Double($0)) })]),
                "n_results": .int(Int64(k)), "include": .array([.string("distances")]),
            ]))
        }
    }

    public func exportedRequests() -> (url: String, bodies: [[UInt8]])? { (queryURL, queryBodies) }

    public func query(index: Int) async throws -> [String] {
        var request = HTTPClientRequest(url: queryURL)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(queryBodies[index])
        let response = try await http.execute(request, timeout: .seconds(120))
        let bytes = try await response.body.collect(upTo: 16 << 20)
        guard response.status.code == 200 else { throw SextantError(.unavailable, "query: HTTP \(response.status.code)") }
        let reply = try JSON.parse(Array(bytes.readableBytesView))
        return reply["ids"]?.arrayValue?.first?.arrayValue?.compactMap(\.stringValue) ?? []
    }

    public func waitUntilIndexed(records: Int) async throws {
        while true {
            let count = try await request(.GET, collections + "/" + collectionID + "/count", nil)
            if count.intValue == Int64(records) { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        guard let settleEngine else { return }
        while try await settleEngine.stats().contains(where: { $0.unindexedRecords > 0 }) {
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    public func close() async {
        try? await http.shutdown()
        await settleEngine?.close()
    }
}
