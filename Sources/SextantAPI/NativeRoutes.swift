import Foundation
import Hummingbird
import NIOPosix
import SextantChroma
import SextantClient
import SextantEmbedding
import SextantJSON
import SextantPayload
import SextantRetrieval
import SextantSQLite
import Synchronization

/// The engine as the API sees it: the client, with every call timed, and a
/// short-lived cache of collection handles (names resolve to ids once per few
/// seconds, not once per search). Holds no state of its own beyond that.
public final class EngineGateway: Sendable {
    public let client: SextantClient
    let metrics: MetricsRegistry
    private let handles = Mutex<[String: (CollectionHandle, ContinuousClock.Instant)]>([:])
    static let cacheSeconds: Int64 = 5

    init(client: SextantClient, metrics: MetricsRegistry) {
        self.client = client
        self.metrics = metrics
    }

    func collection(_ name: String) async throws -> CollectionHandle {
        if let (handle, at) = handles.withLock({ $0[name] }), ContinuousClock.now - at < .seconds(Self.cacheSeconds) {
            return handle
        }
        let handle = try await metrics.timeEngine("GetCollection") { try await client.getCollection(name: name) }
        handles.withLock { $0[name] = (handle, .now) }
        return handle
    }

    /// Collection handles by id (the ChromaDB routes address collections by UUID).
    func collection(id: String) async throws -> CollectionHandle {
        let key = "#id:" + id
        if let (handle, at) = handles.withLock({ $0[key] }), ContinuousClock.now - at < .seconds(Self.cacheSeconds) {
            return handle
        }
        let handle = try await metrics.timeEngine("GetCollection") { try await client.getCollection(id: id) }
        handles.withLock { $0[key] = (handle, .now) }
        return handle
    }

    func forget(_ name: String) { handles.withLock { _ = $0.removeValue(forKey: name) } }
    func forgetAll() { handles.withLock { $0.removeAll() } }

    func time<T>(_ method: String, _ body: () async throws -> T) async throws -> T {
        try await metrics.timeEngine(method, body)
    }
}

/// `/v1/...`: native search, collections, feedback.
struct NativeRoutes {
    let engine: EngineGateway
    let embedders: EmbedderRegistry
    let feedback: FeedbackStore
    let ingestLedgerPath: String?
    let scrapeStatePath: String?

    func register(on router: Router<APIContext>) {
        router.get("/v1/collections") { _, _ in try await listCollections() }
        router.post("/v1/collections") { request, context in try await createCollection(try await readJSON(request, context)) }
        router.post("/v1/collections/:name/search") { request, context in
            let name = try context.parameters.require("name")
            return try await search(name, try await readJSON(request, context))
        }
        router.get("/v1/collections/:name/facets") { request, context in
            try await facets(try context.parameters.require("name"), request)
        }
        router.get("/v1/ingest/runs") { request, _ in try ingestRuns(request) }
        router.post("/v1/feedback") { request, context in try await addFeedback(try await readJSON(request, context)) }
        router.get("/v1/feedback") { request, _ in try await exportFeedback(request) }
    }

    static func embedderIdentifier(_ metadata: Metadata) -> String? { EmbedderBinding.recorded(in: metadata) }

    func listCollections() async throws -> Response {
        let (collections, _) = try await engine.time("ListCollections") { try await engine.client.listCollections() }
        return Reply.json(.array(collections.map(Self.collectionJSON)))
    }

    static func collectionJSON(_ info: CollectionInfo) -> JSONValue {
        .object([
            "name": .string(info.name), "id": .string(info.id), "count": .int(Int64(info.count)),
            "dimension": info.dimension == 0 ? .null : .int(Int64(info.dimension)), "metric": .string(info.metric.rawValue),
            "quantization": info.quantization.map { .string($0.rawValue) } ?? .null,
            "embedder": Self.embedderIdentifier(info.metadata).map(JSONValue.string) ?? .null,
            "text_index": info.textIndex.map { .object(["k1": .double($0.k1), "b": .double($0.b)]) } ?? .null,
            "indexed_fields": .array(info.payloadIndexes.map(JSONValue.string)),
        ])
    }

    /// `GET /v1/ingest/runs?limit=N`: the ingestion worker's last runs that
    /// found work (newest first; a scheduled run that found nothing new is
    /// not news), the files it could not ingest, and the scraper's last runs,
    /// from their SQLite files under the data root; empty lists for a part
    /// this data root does not run.
    func ingestRuns(_ request: Request) throws -> Response {
        let limitText = request.uri.queryParameters.get("limit") ?? "10"
        guard let limit = Int(limitText), (1...100).contains(limit) else { throw APIError.badRequest("'limit' must be in 1...100") }
        func number(_ value: SQLValue) -> JSONValue { value.integer.map(JSONValue.int) ?? value.real.map(JSONValue.double) ?? .null }
        func text(_ value: SQLValue) -> JSONValue { value.text.map(JSONValue.string) ?? .null }
        /// The rows of `sql` from the database at `path`, none when it does not exist.
        func rows(_ path: String?, _ sql: String) throws -> [Row] {
            guard let path, FileManager.default.fileExists(atPath: path) else { return [] }
            do { return try Database(path: path).query(sql, [.integer(Int64(limit))]) } catch {
                throw APIError(.internalServerError, "state_unreadable", "\((path as NSString).lastPathComponent) cannot be read: \(error)")
            }
        }
        let runs = try rows(ingestLedgerPath, """
            SELECT started_at, finished_at, files, rows_ingested, rows_quarantined, enrichment_failures, seconds
            FROM runs WHERE files > 0 OR rows_ingested > 0 OR rows_quarantined > 0 ORDER BY id DESC LIMIT ?
            """)
        let failed = try rows(ingestLedgerPath, """
            SELECT name, collection, error, finished_at FROM files WHERE status = 'failed' ORDER BY id DESC LIMIT ?
            """)
        // A file still being ingested, with a batch committed in the last ten
        // minutes (a worker killed mid-file leaves its row 'running' until it resumes).
        let running = try rows(ingestLedgerPath, """
            SELECT name, collection, rows_done, bytes_done, size_bytes, started_at, updated_at FROM files
            WHERE status = 'running' AND updated_at > strftime('%s', 'now') - 600 ORDER BY id DESC LIMIT ?
            """)
        let scrapes = try rows(scrapeStatePath, """
            SELECT collection, site, started_at, finished_at, complete, summary FROM runs ORDER BY id DESC LIMIT ?
            """)
        return Reply.json(.object([
            "runs": .array(runs.map { row in
                .object(["started_at": number(row[0]), "finished_at": number(row[1]), "files": number(row[2]),
                         "rows_ingested": number(row[3]), "rows_quarantined": number(row[4]),
                         "enrichment_failures": number(row[5]), "seconds": number(row[6])])
            }),
            "running": .array(running.map { row in Self.progress(row) }),
            "failed_files": .array(failed.map { row in
                .object(["name": text(row[0]), "collection": text(row[1]), "error": text(row[2]), "at": number(row[3])])
            }),
            "scrapes": .array(scrapes.map { row in
                .object(["collection": text(row[0]), "site": text(row[1]), "started_at": number(row[2]),
                         "finished_at": number(row[3]), "complete": row[4].integer.map { .bool($0 != 0) } ?? .null, "summary": text(row[5])])
            }),
        ]))
    }

    /// A running file's progress: rows and bytes done, the rate since it
    /// started, and from the bytes left at that rate, the time left and the
    /// rows the whole file holds (estimated; a CSV's row count is known only at its end).
    static func progress(_ row: Row) -> JSONValue {
        let rowsDone = Double(row[2].integer ?? 0), bytesDone = Double(row[3].integer ?? 0), sizeBytes = Double(row[4].integer ?? 0)
        let started = row[5].real ?? 0, updated = row[6].real ?? started
        let elapsed = max(updated - started, 0.001)
        var object: [String: JSONValue] = [
            "name": row[0].text.map(JSONValue.string) ?? .null, "collection": row[1].text.map(JSONValue.string) ?? .null,
            "rows_done": .int(Int64(rowsDone)), "bytes_done": .int(Int64(bytesDone)), "size_bytes": .int(Int64(sizeBytes)),
            "started_at": .double(started), "updated_at": .double(updated), "rows_per_second": .double((rowsDone / elapsed).rounded()),
        ]
        if bytesDone > 0, sizeBytes > 0 {
            object["fraction"] = .double(min(1, bytesDone / sizeBytes))
            object["rows_estimated"] = .int(Int64((rowsDone * sizeBytes / bytesDone).rounded()))
            object["seconds_left"] = .double(max(0, (sizeBytes - bytesDone) / (bytesDone / elapsed)).rounded())
        }
        return .object(object)
    }

    /// `GET /v1/collections/{name}/facets?field=F[&limit=N][&where=JSON]`: the
    /// field's most common values with counts (strings, booleans) and its
    /// range (numbers) among the records the `where` filter matches.
    func facets(_ name: String, _ request: Request) async throws -> Response {
        let parameters = request.uri.queryParameters
        guard let field = parameters.get("field"), !field.isEmpty else { throw APIError.badRequest("'field' is required") }
        let limitText = parameters.get("limit") ?? "10"
        guard let limit = Int(limitText), (1...1_000).contains(limit) else { throw APIError.badRequest("'limit' must be in 1...1000") }
        var filter: WhereFilter?
        if let text = parameters.get("where"), !text.isEmpty {
            let json: JSONValue
            do { json = try JSON.parse(text) } catch { throw APIError.badRequest("'where' is not JSON: \(error)") }
            do { filter = try ChromaGrammar.where(json) } catch { throw APIError.badRequest("Invalid where clause: \(error)") }
        }
        let handle: CollectionHandle
        do { handle = try await engine.collection(name) } catch let error as SextantError where error.code == .notFound {
            throw APIError.notFound("collection '\(name)' does not exist")
        }
        let dated = filter?.readingDates(DateFields.formats(in: handle.info.metadata))
        let result = try await engine.time("Facets") { try await handle.facets(field: field, where: dated, limit: limit) }
        return Reply.json(.object([
            "field": .string(field), "matched": .int(Int64(result.matched)),
            "values": .array(result.values.map { .object(["value": $0.value.json, "count": .int(Int64($0.count))]) }),
            "minimum": result.minimum.map(JSONValue.double) ?? .null, "maximum": result.maximum.map(JSONValue.double) ?? .null,
            "numbers": .int(Int64(result.numbers)), "indexed": .bool(result.indexed),
        ]))
    }

    /// `POST /v1/collections`: `{"name", "dimension"?, "metric"?, "quantization"?,
    /// "capacity"?, "metadata"?, "get_or_create"?, "text_index"?}`. The dimension
    /// may be left out: the first write fixes it. `capacity` is a hint;
    /// collections grow. `text_index` (true by default, false, or
    /// {"k1", "b"}) indexes the documents for lexical and hybrid search.
    /// `indexed_fields` lists metadata fields to index exactly (filters on
    /// them plan from exact counts; facets count from them).
    func createCollection(_ body: JSONValue) async throws -> Response {
        guard body.objectValue != nil else { throw APIError.badRequest("body must be a JSON object") }
        guard let name = try body.optional("name", { $0.stringValue }, "a string") else {
            throw APIError.badRequest("'name' is required")
        }
        let dimension = try body.optional("dimension", { $0.intValue }, "an integer") ?? 0
        guard dimension >= 0 else { throw APIError.badRequest("'dimension' must be positive") }
        let metric = try body.optional("metric", { $0.stringValue.flatMap(DistanceMetric.init(rawValue:)) },
                                       "one of \(DistanceMetric.allCases.map(\.rawValue).joined(separator: ", "))") ?? .cosine
        let quantization = try body.optional("quantization", { $0.stringValue.flatMap(VectorQuantization.init(rawValue:)) },
                                             "one of \(VectorQuantization.allCases.map(\.rawValue).joined(separator: ", "))")
        let capacity = try body.optional("capacity", { $0.intValue }, "an integer")
        if let capacity, capacity < 1 { throw APIError.badRequest("'capacity' must be positive") }
        let getOrCreate = try body.optional("get_or_create", { $0.boolValue }, "a boolean") ?? false
        let metadata = try body["metadata"].flatMap { $0.isNull ? nil : try ChromaGrammar.metadata($0, path: "metadata") } ?? [:]
        let textIndex = try Self.textIndex(body["text_index"])
        var indexedFields: [String] = []
        if let value = body["indexed_fields"], !value.isNull {
            guard let items = value.arrayValue, items.allSatisfy({ $0.stringValue != nil }) else {
                throw APIError.badRequest("'indexed_fields' must be a list of metadata field names")
            }
            indexedFields = items.compactMap(\.stringValue)
        }
        let handle = try await engine.time("CreateCollection") {
            try await engine.client.createCollection(
                name: name, dimension: Int(dimension), metric: metric, metadata: metadata, getOrCreate: getOrCreate,
                capacity: capacity.map { Int($0) }, quantization: quantization, textIndex: textIndex, payloadIndexes: indexedFields)
        }
        engine.forget(name)
        return Reply.json(Self.collectionJSON(handle.info), status: .created)
    }

    /// Similarity in [0, 1]-ish, larger is better: 1 - distance for cosine and
    /// inner product, 1 / (1 + distance) for squared L2.
    static func score(_ distance: Float, _ metric: DistanceMetric) -> Double {
        metric == .l2 ? 1 / (1 + Double(distance)) : 1 - Double(distance)
    }

    func search(_ name: String, _ body: JSONValue) async throws -> Response {
        let start = ContinuousClock.now
        guard body.objectValue != nil else { throw APIError.badRequest("body must be a JSON object") }
        let handle: CollectionHandle
        do { handle = try await engine.collection(name) } catch let error as SextantError where error.code == .notFound {
            throw APIError.notFound("collection '\(name)' does not exist")
        }
        let k = try body.optional("k", { $0.intValue }, "an integer") ?? 10
        guard (1...Int64(APILimits.maximumK)).contains(k) else { throw APIError.badRequest("'k' must be in 1...\(APILimits.maximumK)") }
        // An empty filter object means no filter (as in ChromaDB).
        // Date literals in the layout the feed used read as the seconds stored.
        let filter = try body["where"].flatMap { $0.isNull || $0.objectValue?.isEmpty == true ? nil : try ChromaGrammar.where($0) }?
            .readingDates(DateFields.formats(in: handle.info.metadata))
        let documentFilter = try body["where_document"].flatMap {
            $0.isNull || $0.objectValue?.isEmpty == true ? nil : try ChromaGrammar.whereDocument($0)
        }
        let include = try Self.include(body["include"], defaults: [.documents, .metadatas])
        let mode = try Self.mode(body, hasTextIndex: handle.info.textIndex != nil)
        let fusion = try Self.fusion(body["weights"])
        let text = try body.optional("query", { $0.stringValue }, "a string")
        var vector: [Float]?
        var embedder: String?
        if mode == .lexical {
            guard body["vector"].map({ $0.isNull }) ?? true else { throw APIError.badRequest("a lexical search takes 'query', not 'vector'") }
            try Self.checkQueryText(text)
        } else {
            // Text and vector together only when hybrid is asked for by name.
            let explicitHybrid = mode == .hybrid && body["mode"].map { !$0.isNull } == true
            (vector, embedder) = try await queryVector(body, handle, alongsideText: explicitHybrid)
        }
        let results: [[RecordResult]]
        do {
            results = try await engine.time("Query") {
                if mode == .semantic {
                    return try await handle.query(vectors: vector.map { [$0] } ?? [], k: Int(k), where: filter,
                                                  whereDocument: documentFilter, include: include.union(.distances))
                }
                return try await handle.search(
                    mode: mode, vectors: vector.map { [$0] } ?? [], texts: [text ?? ""], k: Int(k), where: filter,
                    whereDocument: documentFilter, include: include.union(.distances), fusion: fusion)
            }
        } catch let error as SextantError where error.code == .notFound {
            engine.forget(name)
            throw APIError.notFound("collection '\(name)' does not exist")
        } catch let error as SextantError where error.code == .failedPrecondition {
            throw APIError(.unprocessableContent, "no_text_index", error.message)
        }
        let hits: [JSONValue] = (results.first ?? []).map { record in
            var object: [String: JSONValue] = ["id": .string(record.id)]
            if let distance = record.distance {
                object["distance"] = JSONValue.float(distance)
                object["score"] = .double(Self.score(distance, handle.info.metric))
            }
            // Lexical: BM25; hybrid: the fused score. Either is higher-is-better.
            if let score = record.score { object["score"] = .double(score) }
            if include.contains(.documents) { object["document"] = record.document.map(JSONValue.string) ?? .null }
            if include.contains(.metadatas) { object["metadata"] = record.metadata.map(ChromaGrammar.metadataJSON) ?? .null }
            if include.contains(.vectors) { object["vector"] = record.vector.map { .array($0.map { JSONValue.float($0) }) } ?? .null }
            return .object(object)
        }
        let elapsed = ContinuousClock.now - start
        return Reply.json(.object([
            "collection": .string(name), "embedder": embedder.map(JSONValue.string) ?? .null, "mode": .string(mode.rawValue),
            "results": .array(hits),
            "took_ms": .double((Double(elapsed.components.attoseconds) * 1e-15 + Double(elapsed.components.seconds) * 1000)),
        ]))
    }

    /// The query vector: given directly, or the query text embedded by the
    /// embedder that made the collection's vectors (never a different one).
    /// A hybrid search (`alongsideText`) may take both: the text for BM25 and
    /// the vector for the semantic ranking instead of the text's embedding.
    func queryVector(_ body: JSONValue, _ handle: CollectionHandle, alongsideText: Bool = false) async throws -> ([Float], String?) {
        let text = try body.optional("query", { $0.stringValue }, "a string")
        let rawVector = body["vector"].flatMap { $0.isNull ? nil : $0 }
        if alongsideText { try Self.checkQueryText(text) }
        switch (text, rawVector) {
        case (nil, nil): throw APIError.badRequest("give 'query' (text) or 'vector' (numbers)")
        case (.some, .some) where !alongsideText: throw APIError.badRequest("give 'query' or 'vector', not both")
        case (_, .some(let value)):
            guard let vector = try vectors(.array([value]), field: "vector").first ?? nil else {
                throw APIError.badRequest("'vector' must be a list of numbers")
            }
            guard !vector.isEmpty else { throw APIError.badRequest("'vector' is empty") }
            guard handle.dimension == 0 || vector.count == handle.dimension else {
                throw APIError.badRequest("'vector' has \(vector.count) dimensions, collection '\(handle.name)' has \(handle.dimension)")
            }
            return (vector, Self.embedderIdentifier(handle.info.metadata))
        case (.some(let query), nil):
            try Self.checkQueryText(query)
            let embedder: any Embedder
            do { embedder = try EmbedderBinding.embedder(for: handle.info, in: embedders) } catch {
                switch error.kind {
                case .unrecorded:
                    throw APIError(.unprocessableContent, "embedder_unknown", error.message + "; search it with 'vector'")
                case .unavailable: throw APIError(.unprocessableContent, "embedder_unavailable", error.message)
                case .mismatch: throw APIError(.unprocessableContent, "embedder_mismatch", error.message)
                }
            }
            let vector = try await embedder.embed([query])
            guard let first = vector.first else { throw APIError(.internalServerError, "internal", "embedder returned nothing") }
            return (first, embedder.descriptor.identifier)
        }
    }

    /// `text_index`: absent or true for BM25's defaults, false for none, or {"k1", "b"}.
    static func textIndex(_ value: JSONValue?) throws -> TextIndexOptions? {
        guard let value, !value.isNull else { return TextIndexOptions() }
        if let flag = value.boolValue { return flag ? TextIndexOptions() : nil }
        guard let object = value.objectValue else { throw APIError.badRequest("'text_index' must be true, false or {\"k1\", \"b\"}") }
        if let unknown = object.keys.first(where: { $0 != "k1" && $0 != "b" }) {
            throw APIError.badRequest("'text_index' takes k1 and b; got '\(unknown.prefix(40))'")
        }
        // Their ranges are the engine's to check (one place): out of range is its INVALID_ARGUMENT, a 400.
        return TextIndexOptions(k1: try value.optional("k1", { $0.doubleValue }, "a number") ?? 1.2,
                                b: try value.optional("b", { $0.doubleValue }, "a number") ?? 0.75)
    }

    static func checkQueryText(_ text: String?) throws {
        guard let text else { throw APIError.badRequest("give 'query' (text) to search by words") }
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw APIError.badRequest("'query' is empty") }
        guard text.count <= APILimits.maximumQueryCharacters else {
            throw APIError.badRequest("'query' exceeds \(APILimits.maximumQueryCharacters) characters")
        }
    }

    /// `mode` as given; by default hybrid when the collection indexes its
    /// words and the search has text, semantic otherwise.
    static func mode(_ body: JSONValue, hasTextIndex: Bool) throws -> SearchMode {
        guard let given = try body.optional("mode", { $0.stringValue }, "a string") else {
            let hasText = body["query"].map { !$0.isNull } ?? false
            return hasTextIndex && hasText ? .hybrid : .semantic
        }
        guard let mode = SearchMode(rawValue: given) else {
            throw APIError.badRequest("'mode' must be semantic, lexical or hybrid; got '\(given.prefix(40))'")
        }
        return mode
    }

    /// `weights`: {"semantic": w, "lexical": w, "k": rrf k}, each optional.
    static func fusion(_ value: JSONValue?) throws -> RankFusion? {
        guard let value, !value.isNull else { return nil }
        guard let object = value.objectValue else { throw APIError.badRequest("'weights' must be an object") }
        if let unknown = object.keys.first(where: { !["semantic", "lexical", "k"].contains($0) }) {
            throw APIError.badRequest("'weights' takes semantic, lexical and k; got '\(unknown.prefix(40))'")
        }
        let fusion = RankFusion(
            k: try value.optional("k", { $0.doubleValue }, "a number") ?? RankFusion.defaultK,
            semanticWeight: try value.optional("semantic", { $0.doubleValue }, "a number") ?? 1,
            lexicalWeight: try value.optional("lexical", { $0.doubleValue }, "a number") ?? 1)
        guard fusion.isValid else { throw APIError.badRequest("'weights' must be finite, non-negative and not all zero") }
        return fusion
    }

    static func include(_ value: JSONValue?, defaults: Include) throws -> Include {
        guard let value, !value.isNull else { return defaults }
        guard let items = value.arrayValue else { throw APIError.badRequest("'include' must be a list") }
        var include: Include = []
        for item in items {
            switch item.stringValue {
            case "documents": include.insert(.documents)
            case "metadatas": include.insert(.metadatas)
            case "distances": include.insert(.distances)
            case "embeddings", "vectors": include.insert(.vectors)
            case "uris", "data": continue
            default: throw APIError.badRequest("'include' may hold documents, metadatas, distances, embeddings; got \(JSON.serialize(item))")
            }
        }
        return include
    }

    func addFeedback(_ body: JSONValue) async throws -> Response {
        guard body.objectValue != nil else { throw APIError.badRequest("body must be a JSON object") }
        let query = try body.required("query", { $0.stringValue }, "a string")
        let resultID = try body.required("result_id", { $0.stringValue }, "a string")
        let rating = try body.required("rating", { $0.intValue }, "an integer")
        let comment = try body.optional("comment", { $0.stringValue }, "a string")
        let user = try body.optional("user", { $0.stringValue }, "a string")
        let collection = try body.optional("collection", { $0.stringValue }, "a string") ?? ""
        guard (-1...5).contains(rating) else { throw APIError.badRequest("'rating' must be -1 (down), 0, 1 (up) or a 1-5 score") }
        guard !query.isEmpty, query.count <= APILimits.maximumQueryCharacters else {
            throw APIError.badRequest("'query' must be 1...\(APILimits.maximumQueryCharacters) characters")
        }
        guard !resultID.isEmpty, resultID.utf8.count <= 1_024 else { throw APIError.badRequest("'result_id' must be 1...1024 bytes") }
        guard (comment?.count ?? 0) <= APILimits.maximumCommentCharacters else {
            throw APIError.badRequest("'comment' exceeds \(APILimits.maximumCommentCharacters) characters")
        }
        guard (user?.count ?? 0) <= APILimits.maximumUserCharacters else {
            throw APIError.badRequest("'user' exceeds \(APILimits.maximumUserCharacters) characters")
        }
        guard collection.count <= 512 else { throw APIError.badRequest("'collection' exceeds 512 characters") }
        // SQLite's fsync must not stall an event loop (the API runs its tasks on
        // them): the write goes to NIO's blocking-I/O thread pool.
        let id = try await NIOThreadPool.singleton.runIfActive { [feedback] in
            try feedback.add(collection: collection, query: query, resultID: resultID, rating: Int(rating),
                             comment: comment, user: user)
        }
        return Reply.json(.object(["id": .int(id)]), status: .created)
    }

    func exportFeedback(_ request: Request) async throws -> Response {
        let format = request.uri.queryParameters.get("format") ?? "jsonl"
        let after = Int64(request.uri.queryParameters.get("after_id") ?? "0") ?? 0
        let limitText = request.uri.queryParameters.get("limit")
        let afterText = request.uri.queryParameters.get("after_id")
        guard limitText.map({ Int($0) != nil }) ?? true, afterText.map({ Int64($0) != nil }) ?? true else {
            throw APIError.badRequest("'limit' and 'after_id' must be integers")
        }
        let limit = limitText.flatMap { Int($0) } ?? APILimits.maximumFeedbackExportRows
        guard (1...APILimits.maximumFeedbackExportRows).contains(limit) else {
            throw APIError.badRequest("'limit' must be in 1...\(APILimits.maximumFeedbackExportRows)")
        }
        guard after >= 0 else { throw APIError.badRequest("'after_id' must not be negative") }
        let entries = try await NIOThreadPool.singleton.runIfActive { [feedback] in
            try feedback.entries(afterID: after, limit: limit)
        }
        switch format {
        case "jsonl":
            let lines = entries.map { entry in
                JSON.serialize(.object([
                    "id": .int(entry.id), "created_at": .double(entry.createdAt), "collection": .string(entry.collection),
                    "query": .string(entry.query), "result_id": .string(entry.resultID), "rating": .int(Int64(entry.rating)),
                    "comment": entry.comment.map(JSONValue.string) ?? .null, "user": entry.user.map(JSONValue.string) ?? .null,
                ]))
            }
            return Reply.text(lines.map { $0 + "\n" }.joined(), contentType: "application/x-ndjson")
        case "csv":
            func field(_ text: String) -> String {
                text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
                    ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
            }
            var csv = "id,created_at,collection,query,result_id,rating,comment,user\r\n"
            for entry in entries {
                csv += [String(entry.id), String(entry.createdAt), field(entry.collection), field(entry.query), field(entry.resultID),
                        String(entry.rating), field(entry.comment ?? ""), field(entry.user ?? "")].joined(separator: ",") + "\r\n"
            }
            return Reply.text(csv, contentType: "text/csv; charset=utf-8")
        default:
            throw APIError.badRequest("'format' must be jsonl or csv")
        }
    }
}
