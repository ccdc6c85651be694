import Foundation
import Logging
import NIOCore
import NIOPosix
import SextantConcurrency
import SextantPayload
import SextantProtocol
import SextantStorage
import SwiftProtobuf

/// Executes requests against the storage engine and produces response bodies.
///
/// Dispatch switches over `KnownMethod` with no default branch: a method added
/// to the protocol does not compile until it has a handler here.
///
/// Where work runs: cheap reads run inline on the connection's event loop (no
/// thread hop: that is most of a sub-millisecond query's budget); heavy reads
/// (many query vectors, large k, filters that may scan, unbounded gets) go to a
/// thread pool so they cannot stall other connections; writes and admin calls
/// run as tasks, because they wait (for the writer lock, the WAL's fsync, a
/// checkpoint) and waiting must not hold a thread.
final class Router: Sendable {
    typealias Respond = @Sendable (Result<ByteBuffer, RequestError>) -> Void

    let storage: StorageEngine
    let pool: NIOThreadPool
    let logger: Logger
    let info: Sextant_V1_ServerInfo
    let startedAt = Date()
    let allocator = ByteBufferAllocator()
    /// Writes decode, validate and apply on niced threads: when queries keep every
    /// core busy, they get the CPU first (see docs/BENCHMARKS.md, engine under ingest).
    let writeExecutor: NicedExecutor

    /// Set on a read replica: writes are refused with this location in the message.
    let readReplicaOf: String?
    let writeGate: (@Sendable () -> String?)?

    init(storage: StorageEngine, pool: NIOThreadPool, logger: Logger, info: Sextant_V1_ServerInfo, writeExecutor: NicedExecutor,
         readReplicaOf: String? = nil, writeGate: (@Sendable () -> String?)? = nil) {
        self.writeExecutor = writeExecutor
        self.readReplicaOf = readReplicaOf
        self.writeGate = writeGate
        self.storage = storage
        self.pool = pool
        self.logger = logger
        self.info = info
    }

    func dispatch(_ frame: Frame, deadline: NIODeadline?, respond: @escaping Respond) {
        guard let method = frame.header.method.known else {
            respond(.failure(RequestError(.unimplemented, "method \(frame.header.method.rawValue) is not implemented by this server")))
            return
        }
        let body = frame.body
        switch method {
        case .hello:
            respond(.failure(RequestError(.failedPrecondition, "Hello was already sent")))
        case .heartbeat:
            var reply = Sextant_V1_HeartbeatReply()
            reply.nanoseconds = UInt64(Date().timeIntervalSince1970 * 1e9)
            respond(.success(encode(reply)))
        case .serverInfo:
            var reply = info
            reply.collections = UInt32(storage.list().count)
            reply.uptimeSeconds = UInt64(Date().timeIntervalSince(startedAt))
            respond(.success(encode(reply)))
        case .getCollection: respond(run { try getCollection(body) })
        case .listCollections: respond(run { try listCollections(body) })
        case .count: respond(run { try count(body) })
        case .stats: respond(.success(encode(Convert.stats(storage.list(), replica: readReplicaOf != nil))))
        case .get: read(run { ReadRequest.get(try MessageCodec.decode(Sextant_V1_GetRequest.self, from: body)) }, deadline, respond)
        case .query: read(run { ReadRequest.query(try MessageCodec.decode(Sextant_V1_QueryRequest.self, from: body)) }, deadline, respond)
        case .facets: read(run { ReadRequest.facets(try MessageCodec.decode(Sextant_V1_FacetsRequest.self, from: body)) }, deadline, respond)
        case .createCollection: replicatedWrite(respond) { [self] in try await createCollection(body, deadline) }
        case .deleteCollection: replicatedWrite(respond) { [self] in try await deleteCollection(body, deadline) }
        case .modifyCollection: replicatedWrite(respond) { [self] in try await modifyCollection(body, deadline) }
        case .add: replicatedWrite(respond) { [self] in try await writeRecords(.add, body, deadline) }
        case .upsert: replicatedWrite(respond) { [self] in try await writeRecords(.upsert, body, deadline) }
        case .update: replicatedWrite(respond) { [self] in try await writeRecords(.update, body, deadline) }
        case .delete: replicatedWrite(respond) { [self] in try await delete(body, deadline) }
        case .checkpoint: write(respond) { [self] in try await checkpoint(body) }
        case .snapshot: write(respond) { [self] in try await snapshot(body) }
        }
    }

    private func encode(_ message: some SwiftProtobuf.Message) -> ByteBuffer { MessageCodec.encode(message, allocator: allocator) }

    private func run<T>(_ body: () throws -> T) -> Result<T, RequestError> {
        Result { try body() }.mapError(RequestError.init)
    }

    /// Writes and administration run as tasks on the niced write threads.
    /// A change to the collections: refused on a read replica, whose
    /// collections change only by its primary's shipped log.
    private func replicatedWrite(_ respond: @escaping Respond, _ body: @escaping @Sendable () async throws -> ByteBuffer) {
        if let primary = readReplicaOf {
            respond(.failure(RequestError(.failedPrecondition,
                                          "this engine is a read replica following \(primary): send writes to its primary")))
            return
        }
        guard let gate = writeGate else { return write(respond, body) }
        if let refusal = gate() { return respond(.failure(RequestError(.unavailable, refusal))) }
        write(respond) {
            let reply = try await body()
            // Applied and durable here, but a primary that lost its lease meanwhile
            // must not tell the client so: its successor may never see this write.
            if let refusal = gate() { throw RequestError(.unavailable, refusal + " (the write was not acknowledged)") }
            return reply
        }
    }

    private func write(_ respond: @escaping Respond, _ body: @escaping @Sendable () async throws -> ByteBuffer) {
        Task(executorPreference: writeExecutor) {
            do { respond(.success(try await body())) } catch { respond(.failure(RequestError(error))) }
        }
    }

    private func collection(_ reference: Sextant_V1_CollectionRef, present: Bool) throws -> Collection {
        guard present else { throw RequestError(.invalidArgument, "no collection given") }
        switch reference.by {
        case .name(let name):
            guard let found = storage.collection(named: name) else {
                throw RequestError(.notFound, "collection '\(name.prefix(100))' does not exist")
            }
            return found
        case .id(let id):
            guard let found = storage.collection(id: id) else {
                throw RequestError(.notFound, "collection with id '\(id.prefix(100))' does not exist")
            }
            return found
        case nil:
            throw RequestError(.invalidArgument, "collection reference has neither name nor id")
        }
    }

    private func checkDeadline(_ deadline: NIODeadline?) throws {
        if let deadline, deadline < .now() {
            throw RequestError(.deadlineExceeded, "deadline passed before the write was applied; nothing was written")
        }
    }

    // MARK: - Administrative reads

    private func getCollection(_ body: ByteBuffer) throws -> ByteBuffer {
        let request = try MessageCodec.decode(Sextant_V1_CollectionRequest.self, from: body)
        return encode(Convert.info(try collection(request.collection, present: request.hasCollection)))
    }

    private func listCollections(_ body: ByteBuffer) throws -> ByteBuffer {
        let request = try MessageCodec.decode(Sextant_V1_ListCollectionsRequest.self, from: body)
        let all = storage.list()
        var reply = Sextant_V1_ListCollectionsReply()
        reply.total = UInt32(all.count)
        let start = min(Int(request.offset), all.count)
        let end = request.hasLimit ? min(all.count, start + Int(request.limit)) : all.count
        reply.collections = all[start..<end].map(Convert.info)
        return encode(reply)
    }

    private func count(_ body: ByteBuffer) throws -> ByteBuffer {
        let request = try MessageCodec.decode(Sextant_V1_CollectionRequest.self, from: body)
        var reply = Sextant_V1_CountReply()
        reply.count = UInt64(try collection(request.collection, present: request.hasCollection).count)
        return encode(reply)
    }

    // MARK: - Get and query

    /// A decoded Get or Query: decoded once, then run where its cost says.
    enum ReadRequest: Sendable {
        case get(Sextant_V1_GetRequest)
        case query(Sextant_V1_QueryRequest)
        case facets(Sextant_V1_FacetsRequest)

        /// Query vectors × k above which a query leaves the event loop.
        static let heavyQueryWork = 512
        /// Ids or rows above which a get leaves the event loop.
        static let heavyGetRecords = 1_000

        /// Requests that could take milliseconds go to the pool, not the event loop.
        var isHeavy: Bool {
            switch self {
            case .query(let request):
                let queries = max(Int(request.queries.count), request.texts.count)
                return queries * Int(request.k) > Self.heavyQueryWork || request.hasWhere || request.hasWhereDocument
            case .get(let request):
                if request.byIds { return request.ids.count > Self.heavyGetRecords }
                return !request.hasLimit || request.limit > Self.heavyGetRecords || request.hasWhereDocument
            case .facets: return true  // counts over a filter's matches: off the event loop
            }
        }

        /// Read your writes: the LSN the collection must have reached (0: any).
        var minimumLSN: UInt64 {
            switch self {
            case .get(let request): request.minLsn
            case .query(let request): request.minLsn
            case .facets(let request): request.minLsn
            }
        }

        var collection: (reference: Sextant_V1_CollectionRef, present: Bool) {
            switch self {
            case .get(let request): (request.collection, request.hasCollection)
            case .query(let request): (request.collection, request.hasCollection)
            case .facets(let request): (request.collection, request.hasCollection)
            }
        }
    }

    private func read(_ decoded: Result<ReadRequest, RequestError>, _ deadline: NIODeadline?, _ respond: @escaping Respond) {
        let request: ReadRequest
        switch decoded {
        case .success(let value): request = value
        case .failure(let error): return respond(.failure(error))
        }
        let work: @Sendable () -> Result<ByteBuffer, RequestError> = { [self] in
            if let deadline, deadline < .now() { return .failure(RequestError(.deadlineExceeded, "deadline passed before the request ran")) }
            switch request {
            case .get(let get): return run { try self.get(get) }
            case .query(let query): return run { try self.query(query) }
            case .facets(let facets): return run { try self.facets(facets) }
            }
        }
        let minimum = request.minimumLSN
        if minimum > 0 {
            let target: Collection
            do { target = try collection(request.collection.reference, present: request.collection.present) } catch {
                return respond(.failure(RequestError(error)))
            }
            if target.appliedLSN < minimum {
                // Behind the client's last write: wait off the event loop, a bounded time.
                let remaining = deadline.map { max(0, ($0 - .now()).nanoseconds / 1_000_000) } ?? Int64.max
                let waitMilliseconds = min(EngineLimits.minimumLSNWaitMilliseconds, remaining)
                Task { [pool] in
                    let until = ContinuousClock.now + .milliseconds(waitMilliseconds)
                    while target.appliedLSN < minimum && ContinuousClock.now < until { try? await Task.sleep(for: .milliseconds(2)) }
                    guard target.appliedLSN >= minimum else {
                        return respond(.failure(RequestError(.unavailable,
                            "collection '\(target.name)' is at LSN \(target.appliedLSN) here, behind the \(minimum) asked for: try another engine")))
                    }
                    pool.submit { _ in respond(work()) }
                }
                return
            }
        }
        if request.isHeavy {
            pool.submit { _ in respond(work()) }
        } else {
            respond(work())
        }
    }

    private func query(_ request: Sextant_V1_QueryRequest) throws -> ByteBuffer {
        let collection = try collection(request.collection, present: request.hasCollection)
        if request.mode == .sparse { return try sparseQuery(request, collection) }
        let dimension = collection.dimension
        let mode = try Convert.mode(request.mode)
        let vectorCount = request.hasQueries ? Int(request.queries.count) : 0
        let queryCount = mode == .lexical ? request.texts.count : vectorCount
        guard queryCount > 0 else {
            throw RequestError(.invalidArgument, mode == .lexical ? "a lexical query needs at least one text" : "query needs at least one query vector")
        }
        guard queryCount <= ProtocolLimits.maximumQueries else {
            throw RequestError(.invalidArgument, "\(queryCount) queries exceed \(ProtocolLimits.maximumQueries)")
        }
        if mode == .hybrid, request.texts.count != vectorCount {
            throw RequestError(.invalidArgument, "a hybrid query needs one text per query vector: \(request.texts.count) texts, \(vectorCount) vectors")
        }
        if mode == .lexical, vectorCount > 0 {
            throw RequestError(.invalidArgument, "a lexical query takes texts, not vectors")
        }
        if mode == .semantic, !request.texts.isEmpty {
            throw RequestError(.invalidArgument, "a semantic query takes vectors, not texts (mode LEXICAL or HYBRID searches by words)")
        }
        if mode != .lexical {
            if dimension == 0 {  // nothing written yet: no neighbours
                var reply = Sextant_V1_QueryReply()
                reply.results = Array(repeating: Sextant_V1_GetReply(), count: queryCount)
                return encode(reply)
            }
            guard Int(request.queries.dimension) == dimension else {
                throw RequestError(.invalidArgument, "query vectors have \(request.queries.dimension) dimensions, the collection has \(dimension)")
            }
        }
        let (filter, documentFilter) = try WireFilters.decode(
            hasWhere: request.hasWhere, request.where, hasDocument: request.hasWhereDocument, request.whereDocument)
        let include = request.hasInclude ? request.include : Convert.defaultQueryInclude
        let k = Int(request.k == 0 ? 10 : request.k)
        let ef = request.hasEf ? Int(request.ef) : nil
        let results: [[RecordView]]
        if mode == .semantic {
            results = try collection.query(
                try request.queries.rows(), k: k, filter: filter, documentFilter: documentFilter, include: Include(wire: include), ef: ef)
        } else {
            let vectors: [[Float]?] = mode == .lexical ? Array(repeating: nil, count: queryCount) : try request.queries.rows()
            let fusion = Convert.fusion(request.fusion)
            results = try zip(vectors, request.texts).map { vector, text in
                try collection.search(mode: mode, vector: vector, text: text, k: k, filter: filter, documentFilter: documentFilter,
                                      include: Include(wire: include), ef: ef, fusion: fusion)
            }
        }
        var reply = Sextant_V1_QueryReply()
        reply.results = results.map { Convert.reply($0, include: include, dimension: dimension) }
        return encode(reply)
    }

    /// Exact top-k by dot product over the sparse index of `sparse_key`, one
    /// result list per query vector; hits carry `score` (the dot product).
    private func sparseQuery(_ request: Sextant_V1_QueryRequest, _ collection: Collection) throws -> ByteBuffer {
        guard !request.sparseQueries.isEmpty else { throw RequestError(.invalidArgument, "a sparse query needs at least one query vector") }
        guard request.sparseQueries.count <= ProtocolLimits.maximumQueries else {
            throw RequestError(.invalidArgument, "\(request.sparseQueries.count) queries exceed \(ProtocolLimits.maximumQueries)")
        }
        guard !request.hasQueries, request.texts.isEmpty else {
            throw RequestError(.invalidArgument, "a sparse query takes sparse_queries, not dense vectors or texts")
        }
        let queries = try request.sparseQueries.enumerated().map { index, wire in
            try SparseVector(wire: wire, path: "sparse_queries[\(index)]")
        }
        let (filter, documentFilter) = try WireFilters.decode(
            hasWhere: request.hasWhere, request.where, hasDocument: request.hasWhereDocument, request.whereDocument)
        let include = request.hasInclude ? request.include : Convert.defaultQueryInclude
        let k = Int(request.k == 0 ? 10 : request.k)
        let results = try queries.map { query in
            try collection.sparseSearch(key: request.sparseKey, query: query, k: k, filter: filter, documentFilter: documentFilter,
                                        include: Include(wire: include))
        }
        var reply = Sextant_V1_QueryReply()
        reply.results = results.map { Convert.reply($0, include: include, dimension: collection.dimension) }
        return encode(reply)
    }

    private func facets(_ request: Sextant_V1_FacetsRequest) throws -> ByteBuffer {
        let collection = try collection(request.collection, present: request.hasCollection)
        guard !request.field.isEmpty else { throw RequestError(.invalidArgument, "facets need a field") }
        let (filter, documentFilter) = try WireFilters.decode(
            hasWhere: request.hasWhere, request.where, hasDocument: request.hasWhereDocument, request.whereDocument)
        let facets = try collection.facets(field: request.field, filter: filter, documentFilter: documentFilter,
                                           limit: request.limit == 0 ? 10 : Int(request.limit))
        var reply = Sextant_V1_FacetsReply()
        reply.matched = UInt64(facets.matched)
        reply.values = facets.values.map { value in
            var wire = Sextant_V1_FacetValue()
            wire.value = value.value.wire
            wire.count = UInt64(value.count)
            return wire
        }
        if let minimum = facets.minimum { reply.minimum = minimum }
        if let maximum = facets.maximum { reply.maximum = maximum }
        reply.numbers = UInt64(facets.numbers)
        reply.indexed = facets.indexed
        return encode(reply)
    }

    private func get(_ request: Sextant_V1_GetRequest) throws -> ByteBuffer {
        let collection = try collection(request.collection, present: request.hasCollection)
        let (filter, documentFilter) = try WireFilters.decode(
            hasWhere: request.hasWhere, request.where, hasDocument: request.hasWhereDocument, request.whereDocument)
        let include = request.hasInclude ? request.include : Convert.defaultGetInclude
        let records = try collection.get(
            ids: request.byIds ? request.ids : nil, filter: filter, documentFilter: documentFilter,
            offset: Int(request.offset), limit: request.hasLimit ? Int(request.limit) : nil, include: Include(wire: include))
        return encode(Convert.reply(records, include: include, dimension: collection.dimension))
    }

    // MARK: - Collections

    private func createCollection(_ body: ByteBuffer, _ deadline: NIODeadline?) async throws -> ByteBuffer {
        let request = try MessageCodec.decode(Sextant_V1_CreateCollectionRequest.self, from: body)
        let configuration = try Convert.configuration(request)
        try checkDeadline(deadline)
        let (collection, created) = try await storage.create(configuration, getOrCreate: request.getOrCreate)
        var reply = Sextant_V1_CreateCollectionReply()
        reply.collection = Convert.info(collection)
        reply.created = created
        return encode(reply)
    }

    private func deleteCollection(_ body: ByteBuffer, _ deadline: NIODeadline?) async throws -> ByteBuffer {
        let request = try MessageCodec.decode(Sextant_V1_CollectionRequest.self, from: body)
        let target = try collection(request.collection, present: request.hasCollection)
        try checkDeadline(deadline)
        try await storage.delete(named: target.name)
        return encode(Sextant_V1_Empty())
    }

    private func modifyCollection(_ body: ByteBuffer, _ deadline: NIODeadline?) async throws -> ByteBuffer {
        let request = try MessageCodec.decode(Sextant_V1_ModifyCollectionRequest.self, from: body)
        let target = try collection(request.collection, present: request.hasCollection)
        if request.hasNewName, request.newName != target.name, storage.collection(named: request.newName) != nil {
            throw RequestError(.alreadyExists, "collection '\(request.newName.prefix(100))' already exists")
        }
        let metadata = request.hasNewMetadata ? try Metadata(wire: request.newMetadata, path: "new_metadata") : nil
        if request.hasTextIndex, request.dropTextIndex {
            throw RequestError(.invalidArgument, "text_index and drop_text_index together")
        }
        if request.hasTextIndex { try Convert.textIndex(request.textIndex).validate() }
        if request.hasPayloadIndexes { try CollectionConfiguration.validatePayloadIndexes(request.payloadIndexes.fields) }
        try checkDeadline(deadline)
        try await target.modify(name: request.hasNewName ? request.newName : nil, metadata: metadata)
        if request.hasTextIndex {
            try await target.setTextIndex(Convert.textIndex(request.textIndex))
        } else if request.dropTextIndex {
            try await target.setTextIndex(nil)
        }
        if request.hasPayloadIndexes { try await target.setPayloadIndexes(request.payloadIndexes.fields) }
        return encode(Convert.info(target))
    }

    // MARK: - Records

    enum RecordWrite { case add, upsert, update }

    private func writeRecords(_ kind: RecordWrite, _ body: ByteBuffer, _ deadline: NIODeadline?) async throws -> ByteBuffer {
        // Record by record, pausing while queries run (`ReaderPacer`): a batch
        // decoded in one call held a core for whole scheduler ticks.
        let split = try WriteRequestDecoding.split(body)
        let request = split.others
        let target = try collection(request.collection, present: request.hasCollection)
        var pacer = ReaderPacer(readers: target.hasRecentReaders)
        let decoded = try split.wireRecords { pacer.step() }
        let records = try Convert.records(request, decoded, dimension: target.dimension, isUpdate: kind == .update) {
            pacer.step()
        }
        let operation: WriteRequest
        switch kind {
        case .add: operation = .add(records)
        case .upsert: operation = .upsert(records)
        case .update: operation = .update(records, ignoreMissing: request.ignoreMissing)
        }
        try checkDeadline(deadline)
        return encode(Convert.writeReply(try await target.write(operation, pacer: pacer)))
    }

    private func delete(_ body: ByteBuffer, _ deadline: NIODeadline?) async throws -> ByteBuffer {
        let request = try MessageCodec.decode(Sextant_V1_DeleteRequest.self, from: body)
        let target = try collection(request.collection, present: request.hasCollection)
        let (filter, documentFilter) = try WireFilters.decode(
            hasWhere: request.hasWhere, request.where, hasDocument: request.hasWhereDocument, request.whereDocument)
        let operation: WriteRequest
        if request.ids.isEmpty {
            guard filter != nil || documentFilter != nil else {
                throw RequestError(.invalidArgument, "delete needs ids, a where filter, or a where_document filter")
            }
            operation = .deleteWhere(filter, documentFilter)
        } else if filter != nil || documentFilter != nil {
            let matching = try target.get(ids: request.ids, filter: filter, documentFilter: documentFilter, include: [])
            guard !matching.isEmpty else { return encode(Sextant_V1_WriteReply()) }
            operation = .delete(ids: matching.map(\.id))
        } else {
            operation = .delete(ids: request.ids)
        }
        try checkDeadline(deadline)
        return encode(Convert.writeReply(try await target.write(operation)))
    }

    // MARK: - Checkpoints and snapshots

    private func checkpoint(_ body: ByteBuffer) async throws -> ByteBuffer {
        let request = try MessageCodec.decode(Sextant_V1_CollectionRequest.self, from: body)
        let targets = request.hasCollection ? [try collection(request.collection, present: true)] : storage.list()
        var last: UInt64 = 0
        for target in targets {
            try await target.checkpoint()
            last = max(last, target.stats().checkpointLSN)
        }
        var reply = Sextant_V1_CheckpointReply()
        reply.lsn = last
        return encode(reply)
    }

    private func snapshot(_ body: ByteBuffer) async throws -> ByteBuffer {
        let request = try MessageCodec.decode(Sextant_V1_SnapshotRequest.self, from: body)
        guard request.destination.hasPrefix("/") else {
            throw RequestError(.invalidArgument, "snapshot destination must be an absolute path on the engine's machine")
        }
        let targets = request.hasCollection ? [try collection(request.collection, present: true)] : storage.list()
        let positions = try await storage.snapshot(targets, to: request.destination)
        var reply = Sextant_V1_SnapshotReply()
        for (id, position) in positions {
            reply.lsnByCollectionID[id] = position.lsn
            reply.recordsByCollectionID[id] = UInt64(position.records)
        }
        return encode(reply)
    }
}
