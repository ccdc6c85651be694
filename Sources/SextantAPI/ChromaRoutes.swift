import Foundation
import Hummingbird
import SextantChroma
import SextantClient
import SextantJSON
import SextantPayload

/// `/api/v2/...`: the routes chromadb-client 1.5's HttpClient uses, with
/// ChromaDB's JSON shapes, UUID collection ids, defaults for `include` and
/// its error shape, so existing chromadb applications work unchanged.
///
/// One tenant and one database (`default_tenant` / `default_database`) are
/// served; collections map one-to-one onto engine collections (same UUID).
/// Embeddings are always computed by the client (ChromaDB's server never
/// embeds either); collections take their dimension from the first add.
struct ChromaRoutes {
    let engine: EngineGateway

    static let tenant = "default_tenant"
    static let database = "default_database"
    static let databaseID = "00000000-0000-4000-8000-000000000001"
    /// Collection metadata keys of Sextant's own, hidden from ChromaDB clients.
    static let privatePrefix = ChromaCollectionSettings.privatePrefix
    static let configurationKey = ChromaCollectionSettings.configurationKey

    func register(on router: Router<APIContext>) {
        let v2 = router.group("/api/v2")
        v2.get("") { _, _ in heartbeat() }
        v2.get("heartbeat") { _, _ in heartbeat() }
        v2.get("version") { _, _ in Reply.json(.string("1.0.0")) }
        v2.get("healthcheck") { _, _ in
            try await engine.time("Heartbeat") { _ = try await engine.client.heartbeat() }
            return Reply.json(.object(["is_executor_ready": .bool(true), "is_log_client_ready": .bool(true)]))
        }
        v2.get("pre-flight-checks") { _, _ in
            Reply.json(.object(["max_batch_size": .int(Int64(APILimits.chromaMaximumBatchSize)), "supports_base64_encoding": .bool(true)]))
        }
        v2.get("auth/identity") { _, _ in
            Reply.json(.object(["user_id": .string(""), "tenant": .string(Self.tenant), "databases": .array([.string(Self.database)])]))
        }
        v2.post("reset") { _, _ -> Response in
            throw APIError(.forbidden, "reset_disabled", "Resetting is not allowed by this server")
        }
        v2.post("tenants") { request, context in
            let body = try await readJSON(request, context)
            try Self.checkTenant(try body.required("name", { $0.stringValue }, "a string"))
            return Reply.json(.object([:]))
        }
        v2.get("tenants/:tenant") { _, context in
            let tenant = try context.parameters.require("tenant")
            try Self.checkTenant(tenant)
            return Reply.json(.object(["name": .string(tenant)]))
        }
        v2.post("tenants/:tenant/databases") { request, context in
            try Self.checkTenant(try context.parameters.require("tenant"))
            let body = try await readJSON(request, context)
            try Self.checkDatabase(try body.required("name", { $0.stringValue }, "a string"))
            return Reply.json(.object([:]))
        }
        v2.get("tenants/:tenant/databases") { _, context in
            try Self.checkTenant(try context.parameters.require("tenant"))
            return Reply.json(.array([Self.databaseJSON()]))
        }
        v2.get("tenants/:tenant/databases/:database") { _, context in
            try scope(context)
            return Reply.json(Self.databaseJSON())
        }
        v2.delete("tenants/:tenant/databases/:database") { _, _ -> Response in
            throw APIError.badRequest("deleting the default database is not supported")
        }
        let collections = v2.group("tenants/:tenant/databases/:database")
        collections.get("collections_count") { _, context in
            try scope(context)
            return Reply.json(.int(Int64(try await engine.time("ListCollections") { try await engine.client.listCollections() }.total)))
        }
        collections.get("collections") { request, context in
            try scope(context)
            let offset = Int(request.uri.queryParameters.get("offset") ?? "0") ?? 0
            let limit = request.uri.queryParameters.get("limit").flatMap { Int($0) }
            guard offset >= 0, (limit ?? 0) >= 0 else { throw APIError.badRequest("limit and offset must not be negative") }
            let list = try await engine.time("ListCollections") { try await engine.client.listCollections(offset: offset, limit: limit) }
            return Reply.json(.array(list.collections.map(Self.collectionJSON)))
        }
        collections.post("collections") { request, context in
            try scope(context)
            return try await create(try await readJSON(request, context))
        }
        collections.get("collections/by-id/:id") { _, context in
            try scope(context)
            let id = try Self.uuid(try context.parameters.require("collection"))
            return Reply.json(Self.collectionJSON(try await byID(id).info))
        }
        collections.get("collections/:collection") { _, context in
            try scope(context)
            let name = try context.parameters.require("collection")
            do {
                return Reply.json(Self.collectionJSON(try await engine.time("GetCollection") { try await engine.client.getCollection(name: name) }.info))
            } catch let error as SextantError where error.code == .notFound {
                throw APIError.notFound("Collection [\(name)] does not exist")
            }
        }
        collections.delete("collections/:collection") { _, context in
            try scope(context)
            let name = try context.parameters.require("collection")
            do { try await engine.time("DeleteCollection") { try await engine.client.deleteCollection(name: name) } } catch let error
                as SextantError where error.code == .notFound
            {
                throw APIError.notFound("Collection [\(name)] does not exist")
            }
            engine.forgetAll()
            return Reply.json(.object([:]))
        }
        collections.put("collections/:collection") { request, context in
            try scope(context)
            return try await modify(try Self.uuid(try context.parameters.require("collection")), try await readJSON(request, context))
        }
        collections.get("collections/:collection/count") { _, context in
            try scope(context)
            let handle = try await byID(try Self.uuid(try context.parameters.require("collection")))
            return Reply.json(.int(Int64(try await engine.time("Count") { try await handle.count() })))
        }
        for operation in ["add", "upsert", "update", "get", "query", "delete", "search"] {
            collections.post("collections/:collection/\(operation)") { request, context in
                try scope(context)
                let handle = try await byID(try Self.uuid(try context.parameters.require("collection")))
                let body = try await readJSON(request, context)
                guard body.objectValue != nil else { throw APIError.badRequest("body must be a JSON object") }
                switch operation {
                case "add", "upsert", "update": return try await write(operation, handle, body)
                case "get": return try await get(handle, body)
                case "query": return try await query(handle, body)
                case "search": return try await search(handle, body)
                default: return try await delete(handle, body)
                }
            }
        }
    }

    // MARK: - Scope and shapes

    func scope(_ context: APIContext) throws {
        try Self.checkTenant(try context.parameters.require("tenant"))
        try Self.checkDatabase(try context.parameters.require("database"))
    }

    static func checkTenant(_ tenant: String) throws {
        guard tenant == Self.tenant else { throw APIError.notFound("Tenant [\(tenant)] not found (this server serves \(Self.tenant))") }
    }

    static func checkDatabase(_ database: String) throws {
        guard database == Self.database else {
            throw APIError.notFound("Database [\(database)] not found (this server serves \(Self.database))")
        }
    }

    static func uuid(_ text: String) throws -> String {
        guard UUID(uuidString: text) != nil else { throw APIError.badRequest("'\(text.prefix(64))' is not a valid collection UUID") }
        return text.lowercased()
    }

    func heartbeat() -> Response {
        Reply.json(.object(["nanosecond heartbeat": .int(Int64(Date().timeIntervalSince1970 * 1e9))]))
    }

    static func databaseJSON() -> JSONValue {
        .object(["id": .string(databaseID), "name": .string(database), "tenant": .string(tenant)])
    }

    static func collectionJSON(_ info: CollectionInfo) -> JSONValue {
        var metadata = info.metadata.filter { !$0.key.hasPrefix(privatePrefix) }
        var configuration = JSONValue.object(["hnsw": .object(["space": .string(info.metric.rawValue)])])
        if case .string(let stored) = info.metadata[configurationKey], let parsed = try? JSON.parse(stored) {
            configuration = parsed
        }
        if let quantization = info.quantization, case .object(var fields) = configuration {
            var sextant = fields["sextant"]?.objectValue ?? [:]
            sextant["quantization"] = .string(quantization.rawValue)
            fields["sextant"] = .object(sextant)
            configuration = .object(fields)
        }
        if metadata.isEmpty { metadata = [:] }
        return .object([
            "id": .string(info.id), "name": .string(info.name), "configuration_json": configuration,
            "schema": info.metadata[schemaKey].flatMap { value -> JSONValue? in
                if case .string(let stored) = value { return try? JSON.parse(stored) }
                return nil
            } ?? .null,
            "metadata": metadata.isEmpty ? .null : ChromaGrammar.metadataJSON(metadata),
            "dimension": info.dimension == 0 ? .null : .int(Int64(info.dimension)),
            "tenant": .string(tenant), "database": .string(database), "version": .int(0), "log_position": .int(0),
        ])
    }

    func byID(_ id: String) async throws -> CollectionHandle {
        do { return try await engine.collection(id: id) } catch let error
            as SextantError where error.code == .notFound
        {
            throw APIError.notFound("Collection [\(id)] does not exist")
        }
    }

    // MARK: - Collections

    /// The distance space Chroma's settings name (ChromaDB's default is l2).
    static func metric(_ metadata: Metadata?, _ configuration: JSONValue?) throws -> DistanceMetric {
        switch ChromaCollectionSettings.space(metadata, configuration) {
        case "l2": return .l2
        case "cosine": return .cosine
        case "ip": return .innerProduct
        case let other: throw APIError.badRequest("unknown distance space '\(other)' (l2, cosine or ip)")
        }
    }

    /// Sextant's own part of a collection configuration:
    /// `{"sextant": {"quantization": "none" | "int8" | "bits1"}}` beside Chroma's
    /// `hnsw`; absent, the engine's default.
    static func quantization(_ configuration: JSONValue?) throws -> VectorQuantization? {
        guard let value = configuration?["sextant"]?["quantization"], !value.isNull else { return nil }
        guard let name = value.stringValue, let quantization = VectorQuantization(rawValue: name) else {
            throw APIError.badRequest(
                "configuration.sextant.quantization must be one of \(VectorQuantization.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return quantization
    }

    func create(_ body: JSONValue) async throws -> Response {
        let name = try body.required("name", { $0.stringValue }, "a string")
        guard name.utf8.count >= 3 else { throw APIError.badRequest("collection name '\(name)' is shorter than 3 characters") }
        var metadata = try body["metadata"].flatMap { try ChromaGrammar.metadata($0, path: "metadata") } ?? [:]
        let configuration = body["configuration"].flatMap { $0.isNull ? nil : $0 }
        let getOrCreate = try body.optional("get_or_create", { $0.boolValue }, "a boolean") ?? false
        if let configuration { metadata[Self.configurationKey] = .string(JSON.serialize(configuration)) }
        var sparseIndexes: [SparseIndexOptions] = []
        var textIndex: TextIndexOptions?
        if let schema = body["schema"], !schema.isNull {
            let indexes = try Self.schemaIndexes(schema)
            sparseIndexes = indexes.sparse
            if indexes.fullText { textIndex = TextIndexOptions() }
            // Kept as sent and echoed: the client reads its sparse functions back from it.
            metadata[Self.schemaKey] = .string(JSON.serialize(schema))
        }
        let m = ChromaCollectionSettings.hnswSetting(metadata, "hnsw:M")
        let efConstruction = ChromaCollectionSettings.hnswSetting(metadata, "hnsw:construction_ef")
        let ef = ChromaCollectionSettings.hnswSetting(metadata, "hnsw:search_ef")
        let quantization = try Self.quantization(configuration)
        let handle = try await engine.time("CreateCollection") {
            try await engine.client.createCollection(
                name: name, dimension: 0, metric: try Self.metric(metadata, configuration), m: m, efConstruction: efConstruction,
                ef: ef, metadata: metadata, getOrCreate: getOrCreate, quantization: quantization, textIndex: textIndex,
                sparseIndexes: sparseIndexes)
        }
        return Reply.json(Self.collectionJSON(handle.info))
    }

    func modify(_ id: String, _ body: JSONValue) async throws -> Response {
        let handle = try await byID(id)
        let newName = try body.optional("new_name", { $0.stringValue }, "a string")
        var newMetadata = try body["new_metadata"].flatMap { try ChromaGrammar.metadata($0, path: "new_metadata") }
        if newMetadata != nil {  // keep Sextant's own keys
            for (key, value) in handle.info.metadata where key.hasPrefix(Self.privatePrefix) { newMetadata?[key] = value }
        }
        _ = try await engine.time("ModifyCollection") { try await handle.modify(name: newName, metadata: newMetadata) }
        engine.forgetAll()
        return Reply.json(.object([:]))
    }

    // MARK: - Records

    struct Batch {
        var ids: [String]
        var vectors: [[Float]?]?
        var documents: [String?]?
        var metadatas: [Metadata?]?
    }

    static func batch(_ body: JSONValue) throws -> Batch {
        guard let idValues = body["ids"]?.arrayValue else { throw APIError.badRequest("'ids' must be a list of strings") }
        let ids = try idValues.map { value -> String in
            guard let id = value.stringValue else { throw APIError.badRequest("'ids' must hold strings") }
            return id
        }
        guard !ids.isEmpty else { throw APIError.badRequest("'ids' is empty") }
        guard ids.count <= APILimits.chromaMaximumBatchSize * 3 else {
            throw APIError(.badRequest, "batch_too_large", "batch of \(ids.count) exceeds the maximum batch size")
        }
        func column<T>(_ key: String, _ convert: (JSONValue, Int) throws -> T?) throws -> [T?]? {
            guard let value = body[key], !value.isNull else { return nil }
            guard let items = value.arrayValue, items.count == ids.count else {
                throw APIError.badRequest("'\(key)' must be a list with one entry per id (\(ids.count))")
            }
            return try items.enumerated().map { index, item in item.isNull ? nil : try convert(item, index) }
        }
        let vectorsList: [[Float]?]? = try body["embeddings"].flatMap { value in
            if value.isNull { return nil }
            let list = try vectors(value, field: "embeddings")
            guard list.count == ids.count else { throw APIError.badRequest("'embeddings' must have one entry per id (\(ids.count))") }
            return list
        }
        let documents: [String?]? = try column("documents") { item, index in
            guard let text = item.stringValue else { throw APIError.badRequest("'documents[\(index)]' must be a string") }
            return text
        }
        let metadatas: [Metadata?]? = try column("metadatas") { item, index in
            try ChromaGrammar.metadata(item, path: "metadatas[\(index)]")
        }
        return Batch(ids: ids, vectors: vectorsList, documents: documents, metadatas: metadatas)
    }

    func write(_ operation: String, _ handle: CollectionHandle, _ body: JSONValue) async throws -> Response {
        let batch = try Self.batch(body)
        if operation == "update" {
            _ = try await engine.time("Update") {
                try await handle.update(ids: batch.ids, vectors: batch.vectors, documents: batch.documents, metadatas: batch.metadatas,
                                        ignoreMissing: true)
            }
            return Reply.json(.object([:]))
        }
        guard let vectorList = batch.vectors else {
            throw APIError.badRequest("'embeddings' are required: this server does not embed (compute them in the client)")
        }
        guard vectorList.allSatisfy({ $0 != nil }) else { throw APIError.badRequest("'embeddings' must not contain null for \(operation)") }
        var rows = vectorList.compactMap { $0 }
        var ids = batch.ids
        var documents = batch.documents
        var metadatas = batch.metadatas
        if operation == "add" {
            // ChromaDB's add skips ids that already exist (it does not replace them).
            let existing = Set(try await engine.time("Get") { try await handle.get(ids: ids, include: []) }.map(\.id))
            if !existing.isEmpty {
                let keep = ids.indices.filter { !existing.contains(ids[$0]) }
                ids = keep.map { ids[$0] }
                rows = keep.map { rows[$0] }
                documents = documents.map { list in keep.map { list[$0] } }
                metadatas = metadatas.map { list in keep.map { list[$0] } }
            }
            if !ids.isEmpty {
                _ = try await engine.time("Add") { try await handle.add(ids: ids, vectors: rows, documents: documents, metadatas: metadatas) }
            }
            if handle.dimension == 0 { engine.forgetAll() }  // the first vectors decided the dimension
            return Reply.json(.object([:]), status: .created)
        }
        _ = try await engine.time("Upsert") { try await handle.upsert(ids: ids, vectors: rows, documents: documents, metadatas: metadatas) }
        if handle.dimension == 0 { engine.forgetAll() }
        return Reply.json(.object([:]))
    }

    static func include(_ value: JSONValue?, defaults: [String]) throws -> [String] {
        guard let value, !value.isNull else { return defaults }
        guard let items = value.arrayValue else { throw APIError.badRequest("'include' must be a list") }
        return try items.map { item in
            guard let name = item.stringValue, ["documents", "embeddings", "metadatas", "distances", "uris", "data"].contains(name) else {
                throw APIError.badRequest("'include' items must be documents, embeddings, metadatas, distances or uris")
            }
            return name == "data" ? "metadatas" : name
        }
    }

    static func engineInclude(_ names: [String]) -> Include {
        var include: Include = []
        if names.contains("documents") { include.insert(.documents) }
        if names.contains("metadatas") { include.insert(.metadatas) }
        if names.contains("embeddings") { include.insert(.vectors) }
        if names.contains("distances") { include.insert(.distances) }
        return include
    }

    static func filters(_ body: JSONValue) throws -> (WhereFilter?, DocumentFilter?) {
        let filter = try body["where"].flatMap { value -> WhereFilter? in
            if value.isNull || value.objectValue?.isEmpty == true { return nil }
            do { return try ChromaGrammar.where(value) } catch { throw APIError.badRequest("Invalid where clause: \(error)") }
        }
        let document = try body["where_document"].flatMap { value -> DocumentFilter? in
            if value.isNull || value.objectValue?.isEmpty == true { return nil }
            do { return try ChromaGrammar.whereDocument(value) } catch {
                throw APIError.badRequest("Invalid where document clause: \(error)")
            }
        }
        return (filter, document)
    }

    /// `ids` of get and delete: absent or null means none given.
    static func optionalIDs(_ body: JSONValue) throws -> [String]? {
        guard let value = body["ids"], !value.isNull else { return nil }
        guard let items = value.arrayValue else { throw APIError.badRequest("'ids' must be a list of strings") }
        return try items.map { item in
            guard let id = item.stringValue else { throw APIError.badRequest("'ids' must hold strings") }
            return id
        }
    }

    static func columns(_ records: [RecordResult], _ include: [String]) -> [String: JSONValue] {
        var out: [String: JSONValue] = ["ids": .array(records.map { .string($0.id) })]
        out["documents"] = include.contains("documents") ? .array(records.map { $0.document.map(JSONValue.string) ?? .null }) : .null
        out["metadatas"] = include.contains("metadatas")
            ? .array(records.map { record in record.metadata.flatMap { $0.isEmpty ? nil : ChromaGrammar.metadataJSON($0) } ?? .null }) : .null
        out["embeddings"] = include.contains("embeddings")
            ? .array(records.map { $0.vector.map { .array($0.map { JSONValue.float($0) }) } ?? .null }) : .null
        out["uris"] = include.contains("uris") ? .array(records.map { _ in .null }) : .null
        return out
    }

    func get(_ handle: CollectionHandle, _ body: JSONValue) async throws -> Response {
        let ids = try Self.optionalIDs(body)
        let (given, document) = try Self.filters(body)
        let filter = given?.readingDates(DateFields.formats(in: handle.info.metadata))
        let limit = try body.optional("limit", { $0.intValue }, "an integer")
        let offset = try body.optional("offset", { $0.intValue }, "an integer") ?? 0
        guard (limit ?? 0) >= 0, offset >= 0 else { throw APIError.badRequest("limit and offset must not be negative") }
        let include = try Self.include(body["include"], defaults: ["metadatas", "documents"])
        let records = try await engine.time("Get") {
            try await handle.get(ids: ids, where: filter, whereDocument: document, limit: limit.map { Int($0) }, offset: Int(offset),
                                 include: Self.engineInclude(include))
        }
        var out = Self.columns(records, include)
        out["include"] = .array(include.map(JSONValue.string))
        return Reply.json(.object(out))
    }

    func query(_ handle: CollectionHandle, _ body: JSONValue) async throws -> Response {
        guard let queryValue = body["query_embeddings"], !queryValue.isNull else {
            throw APIError.badRequest("'query_embeddings' is required: this server does not embed query texts")
        }
        let queries = try vectors(queryValue, field: "query_embeddings").map { vector -> [Float] in
            guard let vector else { throw APIError.badRequest("'query_embeddings' must not contain null") }
            return vector
        }
        guard !queries.isEmpty else { throw APIError.badRequest("'query_embeddings' is empty") }
        if let ids = body["ids"], !ids.isNull, ids.arrayValue?.isEmpty == false {
            throw APIError.badRequest("querying within a list of ids is not supported by this server; use a where filter")
        }
        let k = try body.optional("n_results", { $0.intValue }, "an integer") ?? 10
        guard (1...Int64(APILimits.maximumK)).contains(k) else { throw APIError.badRequest("'n_results' must be in 1...\(APILimits.maximumK)") }
        if handle.dimension > 0, let wrong = queries.first(where: { $0.count != handle.dimension }) {
            throw APIError(.badRequest, "invalid_dimension",
                           "Collection expecting embedding with dimension of \(handle.dimension), got \(wrong.count)")
        }
        let (given, document) = try Self.filters(body)
        let filter = given?.readingDates(DateFields.formats(in: handle.info.metadata))
        let include = try Self.include(body["include"], defaults: ["metadatas", "documents", "distances"])
        let results = try await engine.time("Query") {
            try await handle.query(vectors: queries, k: Int(k), where: filter, whereDocument: document,
                                   include: Self.engineInclude(include))
        }
        var out: [String: JSONValue] = ["include": .array(include.map(JSONValue.string))]
        let perQuery = results.map { Self.columns($0, include) }
        for key in ["ids", "documents", "metadatas", "embeddings", "uris"] {
            let lists = perQuery.map { $0[key] ?? .null }
            out[key] = key != "ids" && lists.allSatisfy(\.isNull) ? .null : .array(lists)
        }
        out["distances"] = include.contains("distances")
            ? .array(results.map { .array($0.map { $0.distance.map { JSONValue.float($0) } ?? .null }) }) : .null
        return Reply.json(.object(out))
    }

    func delete(_ handle: CollectionHandle, _ body: JSONValue) async throws -> Response {
        let ids = try Self.optionalIDs(body)
        let (given, document) = try Self.filters(body)
        let filter = given?.readingDates(DateFields.formats(in: handle.info.metadata))
        guard ids != nil || filter != nil || document != nil else {
            throw APIError.badRequest("delete needs ids, a where clause or a where_document clause")
        }
        if ids?.isEmpty == true && filter == nil && document == nil { return Reply.json(.object(["deleted": .int(0)])) }
        let deleted = try await engine.time("Delete") { try await handle.delete(ids: ids, where: filter, whereDocument: document) }
        return Reply.json(.object(["deleted": .int(Int64(deleted))]))
    }
}
