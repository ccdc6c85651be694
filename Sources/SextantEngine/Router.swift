import Foundation
import Logging
import NIOCore
import NIOPosix
import SextantConcurrency
import SextantPayload
import SextantProtocol
import SextantStorage

/// Executes requests against the storage engine and produces response bodies.
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

    init(storage: StorageEngine, pool: NIOThreadPool, logger: Logger, info: Sextant_V1_ServerInfo, writeExecutor: NicedExecutor) {
        self.writeExecutor = writeExecutor
        self.storage = storage
        self.pool = pool
        self.logger = logger
        self.info = info
    }

    func dispatch(_ frame: Frame, deadline: NIODeadline?, respond: @escaping Respond) {
        let method = frame.header.method
        switch method {
        case .heartbeat:
            var reply = Sextant_V1_HeartbeatReply()
            reply.nanoseconds = UInt64(Date().timeIntervalSince1970 * 1e9)
            respond(.success(encode(reply)))
        case .serverInfo:
            var reply = info
            reply.collections = UInt32(storage.list().count)
            reply.uptimeSeconds = UInt64(Date().timeIntervalSince(startedAt))
            respond(.success(encode(reply)))
        case .getCollection, .listCollections, .count, .stats:
            respond(Result { try administrativeRead(method, frame.body) }.mapError(RequestError.init))
        case .get, .query:
            // Decode once: the request decides where it runs and is then executed as is.
            let request: Result<ReadRequest, RequestError> = Result { try ReadRequest(method, frame.body) }.mapError(RequestError.init)
            guard case .success(let decoded) = request else {
                if case .failure(let error) = request { respond(.failure(error)) }
                return
            }
            let work: @Sendable () -> Result<ByteBuffer, RequestError> = { [self] in
                if let deadline, deadline < .now() { return .failure(RequestError(.deadlineExceeded, "deadline passed before the request ran")) }
                return Result { try read(decoded) }.mapError(RequestError.init)
            }
            if decoded.isHeavy {
                pool.submit { _ in respond(work()) }
            } else {
                respond(work())
            }
        case .createCollection, .deleteCollection, .modifyCollection, .add, .upsert, .update, .delete, .checkpoint,
            .snapshot:
            Task(executorPreference: writeExecutor) { [self] in
                do {
                    respond(.success(try await write(method, frame.body, deadline: deadline)))
                } catch {
                    respond(.failure(RequestError(error)))
                }
            }
        default:
            respond(.failure(RequestError(.unimplemented, "method \(method.rawValue) is not implemented by this server")))
        }
    }

    private func encode(_ message: some SwiftProtobuf.Message) -> ByteBuffer { MessageCodec.encode(message, allocator: allocator) }

    // MARK: - Reads

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

    private func administrativeRead(_ method: Method, _ body: ByteBuffer) throws -> ByteBuffer {
        switch method {
        case .getCollection:
            let request = try MessageCodec.decode(Sextant_V1_CollectionRequest.self, from: body)
            return encode(Convert.info(try collection(request.collection, present: request.hasCollection)))
        case .listCollections:
            let request = try MessageCodec.decode(Sextant_V1_ListCollectionsRequest.self, from: body)
            let all = storage.list()
            var reply = Sextant_V1_ListCollectionsReply()
            reply.total = UInt32(all.count)
            let start = min(Int(request.offset), all.count)
            let end = request.hasLimit ? min(all.count, start + Int(request.limit)) : all.count
            reply.collections = all[start..<end].map(Convert.info)
            return encode(reply)
        case .count:
            let request = try MessageCodec.decode(Sextant_V1_CollectionRequest.self, from: body)
            var reply = Sextant_V1_CountReply()
            reply.count = UInt64(try collection(request.collection, present: request.hasCollection).count)
            return encode(reply)
        default:  // stats
            var reply = Sextant_V1_StatsReply()
            reply.collections = storage.list().map { collection in
                let stats = collection.stats()
                var out = Sextant_V1_CollectionStats()
                out.id = collection.id
                out.name = collection.name
                out.liveRecords = UInt64(stats.liveRecords)
                out.unindexedRecords = UInt64(stats.unindexedRecords)
                out.indexedRecords = UInt64(stats.indexedRecords)
                out.deletedAwaitingReclaim = UInt64(stats.deletedAwaitingReclaim)
                out.lastLsn = stats.lastLSN
                out.durableLsn = stats.durableLSN
                out.checkpointLsn = stats.checkpointLSN
                out.generation = stats.generation
                out.walBytes = UInt64(stats.walBytes)
                out.diskBytes = UInt64(stats.diskBytes)
                return out
            }
            return encode(reply)
        }
    }

    /// A decoded Get or Query.
    enum ReadRequest: Sendable {
        case get(Sextant_V1_GetRequest)
        case query(Sextant_V1_QueryRequest)

        init(_ method: Method, _ body: ByteBuffer) throws {
            self = method == .query
                ? .query(try MessageCodec.decode(Sextant_V1_QueryRequest.self, from: body))
                : .get(try MessageCodec.decode(Sextant_V1_GetRequest.self, from: body))
        }

        /// Requests that could take milliseconds go to the pool, not the event loop.
        var isHeavy: Bool {
            switch self {
            case .query(let request):
                return Int(request.queries.count) * Int(request.k) > 512 || request.hasWhere || request.hasWhereDocument
            case .get(let request):
                if request.byIds { return request.ids.count > 1_000 }
                return !request.hasLimit || request.limit > 1_000 || request.hasWhereDocument
            }
        }
    }

    private func read(_ decoded: ReadRequest) throws -> ByteBuffer {
        if case .query(let request) = decoded {
            let collection = try collection(request.collection, present: request.hasCollection)
            let dimension = collection.configuration.dimension
            guard request.hasQueries, request.queries.count > 0 else {
                throw RequestError(.invalidArgument, "query needs at least one query vector")
            }
            guard request.queries.count <= UInt32(ProtocolLimits.maximumQueries) else {
                throw RequestError(.invalidArgument, "\(request.queries.count) query vectors exceed \(ProtocolLimits.maximumQueries)")
            }
            if dimension == 0 {  // nothing written yet: no neighbours
                var reply = Sextant_V1_QueryReply()
                reply.results = Array(repeating: Sextant_V1_GetReply(), count: Int(request.queries.count))
                return encode(reply)
            }
            guard Int(request.queries.dimension) == dimension else {
                throw RequestError(.invalidArgument, "query vectors have \(request.queries.dimension) dimensions, the collection has \(dimension)")
            }
            let (filter, documentFilter) = try Convert.optionalFilters(
                request.hasWhere, request.where, request.hasWhereDocument, request.whereDocument)
            let include = request.hasInclude ? request.include : Self.defaultQueryInclude
            let results = try collection.query(
                try request.queries.rows(), k: Int(request.k == 0 ? 10 : request.k), filter: filter,
                documentFilter: documentFilter, include: Convert.include(include), ef: request.hasEf ? Int(request.ef) : nil)
            var reply = Sextant_V1_QueryReply()
            reply.results = results.map { Convert.reply($0, include: include, dimension: dimension) }
            return encode(reply)
        }
        guard case .get(let request) = decoded else { throw RequestError(.internal, "unreachable") }
        let collection = try collection(request.collection, present: request.hasCollection)
        let (filter, documentFilter) = try Convert.optionalFilters(
            request.hasWhere, request.where, request.hasWhereDocument, request.whereDocument)
        let include = request.hasInclude ? request.include : Self.defaultGetInclude
        let records = try collection.get(
            ids: request.byIds ? request.ids : nil, filter: filter, documentFilter: documentFilter,
            offset: Int(request.offset), limit: request.hasLimit ? Int(request.limit) : nil, include: Convert.include(include))
        return encode(Convert.reply(records, include: include, dimension: collection.configuration.dimension))
    }

    static let defaultQueryInclude: Sextant_V1_Include = {
        var include = Sextant_V1_Include()
        include.documents = true
        include.metadatas = true
        include.distances = true
        return include
    }()

    static let defaultGetInclude: Sextant_V1_Include = {
        var include = Sextant_V1_Include()
        include.documents = true
        include.metadatas = true
        return include
    }()

    // MARK: - Writes and administration

    private func write(_ method: Method, _ body: ByteBuffer, deadline: NIODeadline?) async throws -> ByteBuffer {
        switch method {
        case .createCollection:
            let request = try MessageCodec.decode(Sextant_V1_CreateCollectionRequest.self, from: body)
            let defaults = HNSWDefaults.parameters
            var configuration = CollectionConfiguration(
                name: request.name, dimension: Int(request.dimension), metric: try Convert.metric(request.metric),
                hnsw: .init(
                    m: request.hnsw.m == 0 ? defaults.m : Int(request.hnsw.m),
                    efConstruction: request.hnsw.efConstruction == 0 ? defaults.efConstruction : Int(request.hnsw.efConstruction),
                    ef: request.hnsw.ef == 0 ? defaults.ef : Int(request.hnsw.ef)),
                metadata: try Convert.metadata(request.metadata, path: "metadata"))
            if request.capacity > 0 {
                guard request.capacity <= UInt64(StorageLimits.maximumCollectionCapacity) else {
                    throw RequestError(.invalidArgument, "capacity exceeds \(StorageLimits.maximumCollectionCapacity)")
                }
                configuration.capacity = Int(request.capacity)
            }
            try checkDeadline(deadline)
            let (collection, created) = try await storage.create(configuration, getOrCreate: request.getOrCreate)
            var reply = Sextant_V1_CreateCollectionReply()
            reply.collection = Convert.info(collection)
            reply.created = created
            return encode(reply)
        case .deleteCollection:
            let request = try MessageCodec.decode(Sextant_V1_CollectionRequest.self, from: body)
            let target = try collection(request.collection, present: request.hasCollection)
            try checkDeadline(deadline)
            try await storage.delete(named: target.name)
            return encode(Sextant_V1_Empty())
        case .modifyCollection:
            let request = try MessageCodec.decode(Sextant_V1_ModifyCollectionRequest.self, from: body)
            let target = try collection(request.collection, present: request.hasCollection)
            if request.hasNewName, request.newName != target.name, storage.collection(named: request.newName) != nil {
                throw RequestError(.alreadyExists, "collection '\(request.newName.prefix(100))' already exists")
            }
            try checkDeadline(deadline)
            try await target.modify(
                name: request.hasNewName ? request.newName : nil,
                metadata: request.hasNewMetadata ? try Convert.metadata(request.newMetadata, path: "new_metadata") : nil)
            return encode(Convert.info(target))
        case .add, .upsert, .update:
            let request = try MessageCodec.decode(Sextant_V1_WriteRequest.self, from: body)
            let target = try collection(request.collection, present: request.hasCollection)
            let records = try Self.records(request, dimension: target.configuration.dimension, isUpdate: method == .update)
            let operation: WriteRequest =
                method == .add ? .add(records) : method == .upsert ? .upsert(records) : .update(records, ignoreMissing: request.ignoreMissing)
            try checkDeadline(deadline)
            let outcome = try await target.write(operation)
            var reply = Sextant_V1_WriteReply()
            reply.lsn = outcome.lsn
            reply.affected = UInt64(outcome.affected)
            return encode(reply)
        case .delete:
            let request = try MessageCodec.decode(Sextant_V1_DeleteRequest.self, from: body)
            let target = try collection(request.collection, present: request.hasCollection)
            let (filter, documentFilter) = try Convert.optionalFilters(
                request.hasWhere, request.where, request.hasWhereDocument, request.whereDocument)
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
            let outcome = try await target.write(operation)
            var reply = Sextant_V1_WriteReply()
            reply.lsn = outcome.lsn
            reply.affected = UInt64(outcome.affected)
            return encode(reply)
        case .checkpoint:
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
        default:  // snapshot
            let request = try MessageCodec.decode(Sextant_V1_SnapshotRequest.self, from: body)
            guard request.destination.hasPrefix("/") else {
                throw RequestError(.invalidArgument, "snapshot destination must be an absolute path on the engine's machine")
            }
            let targets = request.hasCollection ? [try collection(request.collection, present: true)] : storage.list()
            try FileManager.default.createDirectory(atPath: request.destination + "/collections", withIntermediateDirectories: true)
            var reply = Sextant_V1_SnapshotReply()
            for target in targets {
                let position = try await target.snapshot(to: request.destination + "/collections/" + target.id)
                reply.lsnByCollectionID[target.id] = position.lsn
                reply.recordsByCollectionID[target.id] = UInt64(position.records)
            }
            return encode(reply)
        }
    }

    private func checkDeadline(_ deadline: NIODeadline?) throws {
        if let deadline, deadline < .now() {
            throw RequestError(.deadlineExceeded, "deadline passed before the write was applied; nothing was written")
        }
    }

    /// Records of a write request, with their vectors matched up and checked.
    static func records(_ request: Sextant_V1_WriteRequest, dimension: Int, isUpdate: Bool) throws -> [RecordInput] {
        let count = request.records.count
        guard count > 0 else { throw RequestError(.invalidArgument, "the batch is empty") }
        guard count <= ProtocolLimits.maximumBatchRecords else {
            throw RequestError(.invalidArgument, "batch of \(count) records exceeds \(ProtocolLimits.maximumBatchRecords)")
        }
        var vectors: [[Float]?] = Array(repeating: nil, count: count)
        if request.hasVectors, request.vectors.count > 0 {
            // A collection created without a dimension (0) takes its first write's.
            guard dimension == 0 || Int(request.vectors.dimension) == dimension else {
                throw RequestError(.invalidArgument, "vectors have \(request.vectors.dimension) dimensions, the collection has \(dimension)")
            }
            let rows = try request.vectors.rows()
            if request.vectorRecordIndices.isEmpty {
                guard rows.count == count else {
                    throw RequestError(.invalidArgument, "\(rows.count) vectors for \(count) records")
                }
                for index in 0..<count { vectors[index] = rows[index] }
            } else {
                guard isUpdate else { throw RequestError(.invalidArgument, "vector_record_indices is only for updates") }
                guard rows.count == request.vectorRecordIndices.count else {
                    throw RequestError(.invalidArgument, "\(rows.count) vectors for \(request.vectorRecordIndices.count) indices")
                }
                for (row, index) in zip(rows, request.vectorRecordIndices) {
                    guard Int(index) < count, vectors[Int(index)] == nil else {
                        throw RequestError(.invalidArgument, "vector_record_indices: \(index) is out of range or repeated")
                    }
                    vectors[Int(index)] = row
                }
            }
        } else if !isUpdate {
            throw RequestError(.invalidArgument, "every record needs a vector")
        }
        var result: [RecordInput] = []
        result.reserveCapacity(count)
        for (index, record) in request.records.enumerated() {
            result.append(RecordInput(
                id: record.id, vector: vectors[index], document: record.hasDocument ? record.document : nil,
                metadata: record.hasMetadata ? try Convert.metadata(record.metadata, path: "records[\(index)].metadata") : nil))
        }
        return result
    }
}

import SextantIndex
import SwiftProtobuf

enum HNSWDefaults {
    static let parameters = HNSWParameters()
}
