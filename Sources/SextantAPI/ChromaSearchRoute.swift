import Hummingbird
import SextantChroma
import SextantClient
import SextantJSON
import SextantPayload

/// `POST …/collections/{id}/search`: Chroma's Search API on a single node.
/// Each `$knn` leg runs against the engine with the search's filter (dense
/// legs on the graph, sparse legs on the key's sparse index), the rank
/// expression combines their results as Chroma's server does, then group-by,
/// offset and limit, and one read for the selected columns of the winners.
extension ChromaRoutes {
    func search(_ handle: CollectionHandle, _ body: JSONValue) async throws -> Response {
        let searches: [ChromaSearch]
        do { searches = try ChromaSearch.requests(body) } catch { throw APIError.badRequest("Invalid search: \(error)") }
        var columns: [String: [JSONValue]] = ["ids": [], "documents": [], "embeddings": [], "metadatas": [], "scores": [], "select": []]
        let dates = DateFields.formats(in: handle.info.metadata)
        for var search in searches {
            search.filter = search.filter?.readingDates(dates)
            let result = try await run(search, handle)
            for (key, value) in result { columns[key, default: []].append(value) }
        }
        return Reply.json(.object(columns.mapValues { .array($0) }))
    }

    /// One search's columns: `ids`, then each of `documents`, `embeddings`,
    /// `metadatas`, `scores` as a list, or null when its key was not selected.
    private func run(_ search: ChromaSearch, _ handle: CollectionHandle) async throws -> [String: JSONValue] {
        var ranked: [(id: String, score: Double?)]
        if let rank = search.rank {
            var legResults: [[(id: String, measure: Double)]] = []
            for leg in rank.knnLegs { legResults.append(try await knn(leg, search, handle)) }
            let domain = rank.evaluate(legResults)
            var scored = domain.support.map { (id: $0.key, score: $0.value) }
                .sorted { $0.score < $1.score || ($0.score == $1.score && $0.id < $1.id) }
            if let groupBy = search.groupBy, !scored.isEmpty {
                let records = try await engine.time("Get") { try await handle.get(ids: scored.map(\.id), include: [.metadatas]) }
                let metadata = Dictionary(records.map { ($0.id, $0.metadata ?? [:]) }, uniquingKeysWith: { first, _ in first })
                scored = groupBy.apply(scored, metadata: metadata)
            }
            let window = scored.dropFirst(search.offset).prefix(search.limit ?? scored.count)
            ranked = window.map { (id: $0.id, score: Optional($0.score)) }
        } else {
            // No rank: the filter's records in storage order, without scores.
            let records = try await engine.time("Get") {
                try await handle.get(where: search.filter, whereDocument: search.documentFilter, limit: search.limit, offset: search.offset,
                                     include: [])
            }
            ranked = records.map { (id: $0.id, score: nil) }
        }
        var include: Include = []
        if search.select.contains(ChromaSearch.documentKey) { include.insert(.documents) }
        if search.select.contains(ChromaSearch.embeddingKey) { include.insert(.vectors) }
        if search.wantsMetadata { include.insert(.metadatas) }
        var records: [String: RecordResult] = [:]
        if !include.isEmpty, !ranked.isEmpty {
            let fetched = try await engine.time("Get") { try await handle.get(ids: ranked.map(\.id), include: include) }
            records = Dictionary(fetched.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        }
        // A record deleted between the legs and the read drops out.
        if !include.isEmpty { ranked = ranked.filter { records[$0.id] != nil } }
        var out: [String: JSONValue] = ["ids": .array(ranked.map { .string($0.id) })]
        out["documents"] = include.contains(.documents) ? .array(ranked.map { records[$0.id]?.document.map(JSONValue.string) ?? .null }) : .null
        out["embeddings"] = include.contains(.vectors)
            ? .array(ranked.map { records[$0.id]?.vector.map { .array($0.map { JSONValue.float($0) }) } ?? .null }) : .null
        if search.wantsMetadata {
            let fields = search.selectedFields
            out["metadatas"] = .array(ranked.map { entry in
                guard var metadata = records[entry.id]?.metadata else { return .null }
                if let fields { metadata = metadata.filter { fields.contains($0.key) } }
                return metadata.isEmpty ? .null : ChromaGrammar.metadataJSON(metadata)
            })
        } else {
            out["metadatas"] = .null
        }
        out["scores"] = search.select.contains(ChromaSearch.scoreKey) ? .array(ranked.map { $0.score.map(JSONValue.double) ?? .null }) : .null
        out["select"] = .array(search.orderedSelect.map(JSONValue.string))
        return out
    }

    /// One `$knn` leg: its `limit` nearest records among those the filter
    /// accepts, best first, with Chroma's measure: the distance for dense
    /// vectors, `1 − dot product` for sparse ones.
    private func knn(_ leg: RankExpression.Knn, _ search: ChromaSearch, _ handle: CollectionHandle) async throws
        -> [(id: String, measure: Double)]
    {
        switch leg.query {
        case .dense(let vector):
            if handle.dimension == 0 { return [] }
            guard vector.count == handle.dimension else {
                throw APIError(.badRequest, "invalid_dimension",
                               "Collection expecting embedding with dimension of \(handle.dimension), got \(vector.count)")
            }
            let results = try await engine.time("Query") {
                try await handle.query(vectors: [vector], k: leg.limit, where: search.filter, whereDocument: search.documentFilter,
                                       include: [.distances])
            }
            return (results.first ?? []).map { (id: $0.id, measure: Double($0.distance ?? 0)) }
        case .sparse(let query):
            guard handle.info.sparseIndexes.contains(where: { $0.key == leg.key }) else {
                throw APIError.badRequest("collection has no sparse vector index on '\(leg.key.prefix(60))' (declare it in the collection's schema)")
            }
            let results = try await engine.time("Query") {
                try await handle.sparseSearch(key: leg.key, queries: [query], k: leg.limit, where: search.filter,
                                              whereDocument: search.documentFilter, include: [])
            }
            return (results.first ?? []).map { (id: $0.id, measure: Double(1 - Float($0.score ?? 0))) }
        }
    }
}

// MARK: - Schema

extension ChromaRoutes {
    static let schemaKey = ChromaCollectionSettings.schemaKey

    /// The engine indexes a Chroma `schema` declares.
    static func schemaIndexes(_ schema: JSONValue) throws -> (sparse: [SparseIndexOptions], fullText: Bool) {
        let indexes: (sparse: [ChromaCollectionSettings.SparseDeclaration], fullText: Bool)
        do { indexes = try ChromaCollectionSettings.schemaIndexes(schema) } catch { throw APIError.badRequest(error.message) }
        return (indexes.sparse.map { SparseIndexOptions(key: $0.key, bm25: $0.bm25, sourceKey: $0.sourceKey, embeddingFunction: $0.embeddingFunction) },
                indexes.fullText)
    }
}
