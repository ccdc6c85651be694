import SextantConcurrency
import SextantPayload
import SextantProtocol

/// A collection, in the spirit of chromadb's Python `Collection`: add, upsert,
/// update, delete, get, query, count. Cheap to copy; holds no connection.
public struct CollectionHandle: Sendable {
    public let client: SextantClient
    public let info: CollectionInfo

    public var name: String { info.name }
    public var id: String { info.id }
    public var dimension: Int { info.dimension }

    private var reference: Sextant_V1_CollectionRef {
        var reference = Sextant_V1_CollectionRef()
        reference.id = info.id
        return reference
    }

    /// Adds records; fails with ALREADY_EXISTS (and adds nothing) if any id exists.
    @discardableResult
    public func add(ids: [String], vectors: [[Float]], documents: [String?]? = nil, metadatas: [Metadata?]? = nil)
        async throws -> WriteResult
    {
        try await write(.add, ids: ids, vectors: vectors, documents: documents, metadatas: metadatas, idempotent: false)
    }

    /// Inserts or replaces whole records.
    @discardableResult
    public func upsert(ids: [String], vectors: [[Float]], documents: [String?]? = nil, metadatas: [Metadata?]? = nil)
        async throws -> WriteResult
    {
        try await write(.upsert, ids: ids, vectors: vectors, documents: documents, metadatas: metadatas, idempotent: true)
    }

    /// Changes the given fields of existing records: a nil vector, document or
    /// metadata entry leaves that field as it is. Missing ids fail the batch
    /// unless `ignoreMissing` (ChromaDB's behaviour).
    @discardableResult
    public func update(ids: [String], vectors: [[Float]?]? = nil, documents: [String?]? = nil, metadatas: [Metadata?]? = nil,
                       ignoreMissing: Bool = false) async throws -> WriteResult
    {
        var indices: [UInt32] = []
        var rows: [[Float]] = []
        if let vectors {
            guard vectors.count == ids.count else { throw SextantError(.invalidArgument, "\(vectors.count) vectors for \(ids.count) ids") }
            for (index, vector) in vectors.enumerated() {
                if let vector {
                    indices.append(UInt32(index))
                    rows.append(vector)
                }
            }
        }
        var request = try writeRequest(ids: ids, documents: documents, metadatas: metadatas)
        if !rows.isEmpty {
            request.vectors = try packed(rows)
            if rows.count != ids.count { request.vectorRecordIndices = indices }
        }
        request.ignoreMissing = ignoreMissing
        return try await send(.update, request, idempotent: true)
    }

    /// Deletes by ids and/or filters; returns how many records were deleted.
    @discardableResult
    public func delete(ids: [String]? = nil, where filter: WhereFilter? = nil, whereDocument: DocumentFilter? = nil) async throws
        -> Int
    {
        try Self.validate(filter, whereDocument)
        var request = Sextant_V1_DeleteRequest()
        request.collection = reference
        request.ids = ids ?? []
        if let filter { request.where = filter.wire }
        if let whereDocument { request.whereDocument = whereDocument.wire }
        let reply = try await client.call(.delete, request, as: Sextant_V1_WriteReply.self, idempotent: ids != nil && filter == nil && whereDocument == nil)
        client.noteWritten(collectionID: info.id, lsn: reply.lsn)
        return Int(reply.affected)
    }

    public func count() async throws -> Int {
        var request = Sextant_V1_CollectionRequest()
        request.collection = reference
        return Int(try await client.call(.count, request, as: Sextant_V1_CountReply.self, idempotent: true).count)
    }

    /// Records by id (in the order asked) and/or filter, with offset and limit.
    public func get(ids: [String]? = nil, where filter: WhereFilter? = nil, whereDocument: DocumentFilter? = nil, limit: Int? = nil,
                    offset: Int = 0, include: Include = .getDefault) async throws -> [RecordResult] {
        try Self.validate(filter, whereDocument)
        var request = Sextant_V1_GetRequest()
        request.collection = reference
        if let ids {
            request.ids = ids
            request.byIds = true
        }
        if let filter { request.where = filter.wire }
        if let whereDocument { request.whereDocument = whereDocument.wire }
        if let limit { request.limit = UInt32(clamping: limit) }
        request.offset = UInt32(clamping: offset)
        request.include = include.wire()
        let reply = try await client.call(.get, request, as: Sextant_V1_GetReply.self, idempotent: true)
        return try RecordResult.list(reply)
    }

    /// The k nearest records to each query vector, nearest first.
    public func query(vectors: [[Float]], k: Int = 10, where filter: WhereFilter? = nil, whereDocument: DocumentFilter? = nil,
                      include: Include = .queryDefault, ef: Int? = nil, timeoutMilliseconds: Int64? = nil) async throws
        -> [[RecordResult]]
    {
        guard k >= 1 else { throw SextantError(.invalidArgument, "k must be at least 1, got \(k)") }
        guard !vectors.isEmpty else { throw SextantError(.invalidArgument, "query needs at least one vector") }
        try Self.validate(filter, whereDocument)
        var request = Sextant_V1_QueryRequest()
        request.collection = reference
        request.queries = try packed(vectors)
        request.k = UInt32(clamping: k)
        if let filter { request.where = filter.wire }
        if let whereDocument { request.whereDocument = whereDocument.wire }
        request.include = include.wire()
        if let ef { request.ef = UInt32(clamping: ef) }
        let reply = try await client.call(.query, request, as: Sextant_V1_QueryReply.self, idempotent: true,
                                          timeoutMilliseconds: timeoutMilliseconds)
        return try reply.results.map(RecordResult.list)
    }

    /// Search by mode: `semantic` ranks by distance to `vectors` (as `query`),
    /// `lexical` by BM25 of `texts` over the documents (the collection needs a
    /// text index), `hybrid` fuses both by reciprocal rank (one vector and one
    /// text per query). Lexical and hybrid results carry `score`.
    public func search(mode: SearchMode, vectors: [[Float]] = [], texts: [String] = [], k: Int = 10,
                       where filter: WhereFilter? = nil, whereDocument: DocumentFilter? = nil, include: Include = .queryDefault,
                       ef: Int? = nil, fusion: RankFusion? = nil, timeoutMilliseconds: Int64? = nil) async throws
        -> [[RecordResult]]
    {
        guard k >= 1 else { throw SextantError(.invalidArgument, "k must be at least 1, got \(k)") }
        switch mode {
        case .semantic:
            guard !vectors.isEmpty, texts.isEmpty else { throw SextantError(.invalidArgument, "a semantic search takes vectors only") }
        case .lexical:
            guard !texts.isEmpty, vectors.isEmpty else { throw SextantError(.invalidArgument, "a lexical search takes texts only") }
        case .hybrid:
            guard !texts.isEmpty, texts.count == vectors.count else {
                throw SextantError(.invalidArgument, "a hybrid search takes one text per vector")
            }
        }
        try Self.validate(filter, whereDocument)
        var request = Sextant_V1_QueryRequest()
        request.collection = reference
        if !vectors.isEmpty { request.queries = try packed(vectors) }
        request.texts = texts
        request.mode = mode.wire
        request.k = UInt32(clamping: k)
        if let filter { request.where = filter.wire }
        if let whereDocument { request.whereDocument = whereDocument.wire }
        request.include = include.wire()
        if let ef { request.ef = UInt32(clamping: ef) }
        if let fusion {
            request.fusion.k = fusion.k
            request.fusion.semanticWeight = fusion.semanticWeight
            request.fusion.lexicalWeight = fusion.lexicalWeight
        }
        let reply = try await client.call(.query, request, as: Sextant_V1_QueryReply.self, idempotent: true,
                                          timeoutMilliseconds: timeoutMilliseconds)
        return try reply.results.map(RecordResult.list)
    }

    /// Exact top-k by dot product over the collection's sparse index on `key`,
    /// one result list per query vector, best first; results carry `score`
    /// (the dot product, a BM25 key's query scaled by IDF first).
    public func sparseSearch(key: String, queries: [SparseVector], k: Int = 10, where filter: WhereFilter? = nil,
                             whereDocument: DocumentFilter? = nil, include: Include = .queryDefault,
                             timeoutMilliseconds: Int64? = nil) async throws -> [[RecordResult]]
    {
        guard k >= 1 else { throw SextantError(.invalidArgument, "k must be at least 1, got \(k)") }
        guard !queries.isEmpty else { throw SextantError(.invalidArgument, "a sparse search needs at least one query vector") }
        for (index, query) in queries.enumerated() {
            do { try query.validate(path: "queries[\(index)]") } catch { throw SextantError(.invalidArgument, error.description) }
        }
        try Self.validate(filter, whereDocument)
        var request = Sextant_V1_QueryRequest()
        request.collection = reference
        request.mode = .sparse
        request.sparseKey = key
        request.sparseQueries = queries.map(\.wire)
        request.k = UInt32(clamping: k)
        if let filter { request.where = filter.wire }
        if let whereDocument { request.whereDocument = whereDocument.wire }
        request.include = include.wire()
        let reply = try await client.call(.query, request, as: Sextant_V1_QueryReply.self, idempotent: true,
                                          timeoutMilliseconds: timeoutMilliseconds)
        return try reply.results.map(RecordResult.list)
    }

    /// A metadata field's most common values (strings, booleans) with counts,
    /// and its numeric range, among the records matching the filters.
    public func facets(field: String, where filter: WhereFilter? = nil, whereDocument: DocumentFilter? = nil, limit: Int = 10,
                       timeoutMilliseconds: Int64? = nil) async throws -> FacetResult
    {
        guard (1...1_000).contains(limit) else { throw SextantError(.invalidArgument, "limit must be in 1...1000, got \(limit)") }
        try Self.validate(filter, whereDocument)
        var request = Sextant_V1_FacetsRequest()
        request.collection = reference
        request.field = field
        request.limit = UInt32(limit)
        if let filter { request.where = filter.wire }
        if let whereDocument { request.whereDocument = whereDocument.wire }
        let reply = try await client.call(.facets, request, as: Sextant_V1_FacetsReply.self, idempotent: true,
                                          timeoutMilliseconds: timeoutMilliseconds)
        let values = try reply.values.map { value in
            FacetResult.Value(value: try MetadataValue(wire: value.value, path: "facets.values"), count: Int(value.count))
        }
        return FacetResult(matched: Int(reply.matched), values: values, minimum: reply.hasMinimum ? reply.minimum : nil,
                           maximum: reply.hasMaximum ? reply.maximum : nil, numbers: Int(reply.numbers), indexed: reply.indexed)
    }

    /// Renames the collection, replaces its metadata, builds or drops its text
    /// index, and/or replaces its indexed metadata fields (a build reads every
    /// record: writes wait meanwhile; an empty list drops them all).
    public func modify(name: String? = nil, metadata: Metadata? = nil, textIndex: TextIndexChange? = nil,
                       payloadIndexes: [String]? = nil) async throws -> CollectionHandle
    {
        var request = Sextant_V1_ModifyCollectionRequest()
        request.collection = reference
        if let name { request.newName = name }
        if let metadata { request.newMetadata = metadata.wire }
        switch textIndex {
        case .build(let options): request.textIndex = options.wire
        case .drop: request.dropTextIndex = true
        case nil: break
        }
        if let payloadIndexes { request.payloadIndexes.fields = payloadIndexes }
        let info = try await client.call(.modifyCollection, request, as: Sextant_V1_CollectionInfo.self, idempotent: true)
        return CollectionHandle(client: client, info: CollectionInfo(info))
    }

    // MARK: - Internals

    /// The engine's own validation, here: a bad filter fails before it is sent,
    /// with the message the engine would answer.
    static func validate(_ filter: WhereFilter?, _ documentFilter: DocumentFilter?) throws {
        do { try FilterValidation.validate(filter, documentFilter) } catch {
            throw SextantError(.invalidArgument, error.description)
        }
    }

    /// Packs vectors; a collection whose dimension is not decided yet (0) takes
    /// the first vector's, and all must agree.
    private func packed(_ rows: [[Float]]) throws -> Sextant_V1_Vectors {
        let dimension = info.dimension > 0 ? info.dimension : (rows.first?.count ?? 0)
        for row in rows where row.count != dimension {
            let what = info.dimension > 0 ? "the collection has \(dimension)" : "the first vector has \(dimension)"
            throw SextantError(.invalidArgument, "vector has \(row.count) dimensions, \(what)")
        }
        var pacer = ReaderPacer(readers: BackgroundPriority.currentThreadIsBackground)
        return Sextant_V1_Vectors(rows: rows, dimension: dimension) { pacer.step() }
    }

    private func writeRequest(ids: [String], documents: [String?]?, metadatas: [Metadata?]?) throws -> Sextant_V1_WriteRequest {
        if let documents, documents.count != ids.count {
            throw SextantError(.invalidArgument, "\(documents.count) documents for \(ids.count) ids")
        }
        if let metadatas, metadatas.count != ids.count {
            throw SextantError(.invalidArgument, "\(metadatas.count) metadatas for \(ids.count) ids")
        }
        var request = Sextant_V1_WriteRequest()
        request.collection = reference
        request.records = ids.enumerated().map { index, id in
            var record = Sextant_V1_Record()
            record.id = id
            if let document = documents?[index] { record.document = document }
            if let metadata = metadatas?[index] { record.metadata = metadata.wire }
            return record
        }
        return request
    }

    private func write(_ method: Method, ids: [String], vectors: [[Float]], documents: [String?]?, metadatas: [Metadata?]?,
                       idempotent: Bool) async throws -> WriteResult {
        guard vectors.count == ids.count else { throw SextantError(.invalidArgument, "\(vectors.count) vectors for \(ids.count) ids") }
        var request = try writeRequest(ids: ids, documents: documents, metadatas: metadatas)
        request.vectors = try packed(vectors)
        return try await send(method, request, idempotent: idempotent)
    }

    /// A caller on a background thread (niced or SCHED_IDLE: an ingest worker, a
    /// load generator's writer) encodes record by record with pauses, so that
    /// queries served on the same machine keep their latency.
    private func send(_ method: Method, _ request: Sextant_V1_WriteRequest, idempotent: Bool) async throws -> WriteResult {
        var pacer = ReaderPacer(readers: BackgroundPriority.currentThreadIsBackground)
        let body = WriteRequestEncoding.encode(request) { pacer.step() }
        let reply = try await client.call(method, body: body, as: Sextant_V1_WriteReply.self, idempotent: idempotent)
        client.noteWritten(collectionID: info.id, lsn: reply.lsn)
        return WriteResult(lsn: reply.lsn, affected: Int(reply.affected))
    }
}
