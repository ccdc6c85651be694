import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import SextantConcurrency
import SextantProtocol
import SextantSupport
import Synchronization

public struct ClientConfiguration: Sendable {
    public var address: EngineAddress
    public var token: String?
    /// Connections in the pool; requests are spread over them and pipelined on each.
    public var connections = 2
    /// Applied to every call that does not set its own.
    public var timeoutMilliseconds: Int64 = 30_000
    /// Retries of idempotent calls that fail with UNAVAILABLE (connection lost,
    /// engine restarting): 4 attempts, 50 ms doubling to 2 s.
    public var retry = RetryPolicy(attempts: 4, initialDelayMilliseconds: 50, maximumDelayMilliseconds: 2_000)
    public var clientName = "sextant-swift"
    public var maximumFrameBytes = ProtocolLimits.defaultMaximumFrameBytes
    /// The event loops to run connections on; nil: a private group of up to two threads.
    public var eventLoopGroup: (any EventLoopGroup)?
    /// For a `tls://` address: the CA (PEM) that signed the engine's certificate;
    /// nil trusts the system's store. Defaults to $SEXTANT_ENGINE_CA_FILE, so every
    /// service (API, worker, scraper, bots, backup) follows one setting.
    public var caFile: String?

    /// Read replicas (`sextant engine --follow`) of the engine at `address`:
    /// reads go to the least busy healthy one, with the primary as the last
    /// resort; writes and administration always go to `address`.
    public var replicas: [EngineAddress] = []

    public init(address: EngineAddress, token: String? = nil) {
        self.address = address
        self.token = token
        caFile = ProcessInfo.processInfo.environment["SEXTANT_ENGINE_CA_FILE"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// `primary[,replica,...]`, as every command's `--engine` takes it.
    public init(endpoints: String, token: String? = nil) throws {
        let parts = endpoints.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard let first = parts.first else { throw SextantError(.invalidArgument, "no engine address in '\(endpoints)'") }
        guard parts.count <= ClientConfiguration.maximumReplicas + 1 else {
            throw SextantError(.invalidArgument, "at most \(ClientConfiguration.maximumReplicas) replicas beside the primary")
        }
        self.init(address: try EngineAddress(parsing: first), token: token)
        replicas = try parts.dropFirst().map { try EngineAddress(parsing: $0) }
    }

    public static let maximumReplicas = 64
}

/// The Swift client of the engine: the only way the search API, ingestion
/// worker, scraper and bots talk to it.
///
/// A small pool of connections, each carrying many requests at once; every
/// call has a deadline (sent to the engine, enforced here too); idempotent
/// calls (reads, upserts, updates, deletes by id) are retried with exponential
/// backoff after a lost connection, and the pool reconnects on demand.
public final class SextantClient: Sendable {
    public let configuration: ClientConfiguration
    private let group: any EventLoopGroup
    /// Whether `close()` shuts the group down (false for a shared group).
    private let ownsGroup: Bool
    private let slots: Mutex<[Connection?]>
    private let slotCount: Int
    /// Built once: a TLS context loads and parses its trust store.
    private let tls: NIOSSLContext?
    private let next = Atomic<Int>(0)
    private let reconnecting: [AsyncSerialGate]
    /// One executor per event loop of the client's group. A task that prefers one
    /// (`Task(executorPreference:)`, `group.addTask(executorPreference:)`) makes
    /// its calls on a connection served by that loop's thread when the pool has
    /// one there (a private group has as many loops as the pool has connections,
    /// at most two); otherwise its calls go round-robin like anyone's.
    public let executors: [EventLoopExecutor]
    /// One client per read replica, connected on first use.
    private let replicaEndpoints: [ReplicaEndpoint]
    /// Per collection id, the LSN of this client's last acknowledged write: reads
    /// carry it as `min_lsn` when replicas may answer them (read your writes).
    private let writtenLSNs = Mutex<[String: UInt64]>([:])

    private init(configuration: ClientConfiguration, group: any EventLoopGroup, ownsGroup: Bool, tls: NIOSSLContext?) {
        self.configuration = configuration
        self.group = group
        self.ownsGroup = ownsGroup
        self.tls = tls
        slotCount = max(1, configuration.connections)
        slots = Mutex(Array(repeating: nil, count: max(1, configuration.connections)))
        reconnecting = (0..<max(1, configuration.connections)).map { _ in AsyncSerialGate() }
        executors = group.makeIterator().map(EventLoopExecutor.init)
        assert(!executors.isEmpty, "an event loop group has at least one loop")
        replicaEndpoints = configuration.replicas.map { address in
            var replica = configuration
            replica.address = address
            replica.replicas = []
            replica.retry.attempts = 1  // a failing replica hands the read to the next, at once
            let replicaTLS: NIOSSLContext?
            if case .tls = address { replicaTLS = try? SextantTLS.clientContext(caFile: configuration.caFile) } else { replicaTLS = nil }
            return ReplicaEndpoint(client: SextantClient(configuration: replica, group: group, ownsGroup: false, tls: replicaTLS))
        }
    }

    /// The executor for the `number`-th of several concurrent callers: callers
    /// are spread over the loops in turn.
    public func executor(forCaller number: Int) -> EventLoopExecutor? {
        executors.isEmpty ? nil : executors[number % executors.count]
    }

    /// Connects the pool (every connection says Hello) or throws UNAVAILABLE / UNAUTHENTICATED.
    public static func connect(_ configuration: ClientConfiguration) async throws -> SextantClient {
        // A server that already runs NIO (the search API) passes its own group so
        // engine replies are handled on the threads that serve its requests:
        // fewer thread hops per call.
        var tls: NIOSSLContext? = nil
        if case .tls = configuration.address {
            do { tls = try SextantTLS.clientContext(caFile: configuration.caFile) } catch {
                throw SextantError(.invalidArgument, "TLS to \(configuration.address): \(error)")
            }
        }
        let client: SextantClient
        if let shared = configuration.eventLoopGroup {
            client = SextantClient(configuration: configuration, group: shared, ownsGroup: false, tls: tls)
        } else {
            client = SextantClient(
                configuration: configuration, group: MultiThreadedEventLoopGroup(numberOfThreads: min(2, System.coreCount)),
                ownsGroup: true, tls: tls)
        }
        do {
            for index in 0..<client.slotCount { _ = try await client.connection(at: index) }
        } catch {
            await client.close()
            throw error
        }
        return client
    }

    public static func connect(to address: String, token: String? = nil) async throws -> SextantClient {
        try await connect(ClientConfiguration(address: try EngineAddress(parsing: address), token: token))
    }

    public func close() async {
        for replica in replicaEndpoints { await replica.client.close() }
        let connections = slots.withLock { current -> [Connection?] in
            defer { current = Array(repeating: nil, count: current.count) }
            return current
        }
        for connection in connections { await connection?.close() }
        if ownsGroup { try? await group.shutdownGracefully() }
    }

    private func connection(at index: Int) async throws -> Connection {
        if let live = slots.withLock({ $0[index] }), live.isActive { return live }
        return try await reconnecting[index].run { [self] in
            if let live = slots.withLock({ $0[index] }), live.isActive { return live }
            let fresh = try await Connection.open(
                configuration.address, group: group, token: configuration.token, clientName: configuration.clientName,
                maximumFrameBytes: configuration.maximumFrameBytes,
                timeout: .milliseconds(min(configuration.timeoutMilliseconds, 10_000)), tls: tls)
            slots.withLock { $0[index] = fresh }
            return fresh
        }
    }

    /// A connection for the next call. A caller already on an event loop thread
    /// (the search API's handlers with a shared group, or a task preferring one of
    /// `executors`) gets a connection served by that same thread when one is live:
    /// the request is written and its reply read without waking another thread.
    /// Others go round-robin.
    private func pickConnection() async throws -> Connection {
        if let local = slots.withLock({ slots in slots.first { $0?.isActive == true && $0?.isOnCurrentThread == true } }),
           let local {
            return local
        }
        return try await connection(at: next.add(1, ordering: .relaxed).oldValue % slotCount)
    }

    /// Sends one request and decodes the reply. Retries idempotent calls on UNAVAILABLE.
    public func call<Reply: SwiftProtobuf.Message>(
        _ method: Method, _ request: some SwiftProtobuf.Message, as _: Reply.Type, idempotent: Bool,
        timeoutMilliseconds: Int64? = nil
    ) async throws -> Reply {
        guard !replicaEndpoints.isEmpty else {
            return try await call(method, body: MessageCodec.encode(request), as: Reply.self, idempotent: idempotent,
                                  timeoutMilliseconds: timeoutMilliseconds)
        }
        let message = withWrittenLSN(request)
        return try await call(method, body: MessageCodec.encode(message), as: Reply.self, idempotent: idempotent,
                              timeoutMilliseconds: timeoutMilliseconds)
    }

    /// Called with every acknowledged write's LSN.
    func noteWritten(collectionID: String, lsn: UInt64) {
        guard !replicaEndpoints.isEmpty, lsn > 0 else { return }
        writtenLSNs.withLock { $0[collectionID] = max($0[collectionID] ?? 0, lsn) }
    }

    private func writtenLSN(_ reference: Sextant_V1_CollectionRef) -> UInt64 {
        guard case .id(let id) = reference.by else { return 0 }
        return writtenLSNs.withLock { $0[id] ?? 0 }
    }

    /// The read with `min_lsn` set to this client's last write to its collection.
    private func withWrittenLSN(_ request: some SwiftProtobuf.Message) -> any SwiftProtobuf.Message {
        switch request {
        case var get as Sextant_V1_GetRequest:
            get.minLsn = max(get.minLsn, writtenLSN(get.collection))
            return get
        case var query as Sextant_V1_QueryRequest:
            query.minLsn = max(query.minLsn, writtenLSN(query.collection))
            return query
        case var facets as Sextant_V1_FacetsRequest:
            facets.minLsn = max(facets.minLsn, writtenLSN(facets.collection))
            return facets
        default:
            return request
        }
    }

    /// Methods a read replica answers as its primary would.
    static func isReplicaRead(_ method: Method) -> Bool {
        switch method.known {
        case .get?, .query?, .facets?, .count?, .getCollection?, .listCollections?: return true
        default: return false
        }
    }

    /// The same with the request already encoded.
    public func call<Reply: SwiftProtobuf.Message>(
        _ method: Method, body: ByteBuffer, as _: Reply.Type, idempotent: Bool, timeoutMilliseconds: Int64? = nil
    ) async throws -> Reply {
        if !replicaEndpoints.isEmpty && Self.isReplicaRead(method) {
            // The least busy healthy replica first, then the others; UNAVAILABLE (behind
            // min_lsn, restarting, unreachable) or NOT_FOUND (a collection it has not
            // seen yet) passes the read on, and the primary answers last.
            let now = MonotonicClock.milliseconds()
            let order = replicaEndpoints.sorted { a, b in
                let (aHealthy, bHealthy) = (a.isHealthy(at: now), b.isHealthy(at: now))
                if aHealthy != bHealthy { return aHealthy }
                return a.inFlight.load(ordering: .relaxed) < b.inFlight.load(ordering: .relaxed)
            }
            for replica in order where replica.isHealthy(at: now) {
                replica.inFlight.add(1, ordering: .relaxed)
                defer { replica.inFlight.subtract(1, ordering: .relaxed) }
                do {
                    return try await replica.client.call(method, body: body, as: Reply.self, idempotent: idempotent,
                                                         timeoutMilliseconds: timeoutMilliseconds)
                } catch {
                    let code = (error as? SextantError)?.code
                    guard code == .unavailable || code == .notFound else { throw error }
                    if code == .unavailable { replica.markUnhealthy() }
                }
            }
        }
        return try await callPrimary(method, body: body, as: Reply.self, idempotent: idempotent,
                                     timeoutMilliseconds: timeoutMilliseconds)
    }

    private func callPrimary<Reply: SwiftProtobuf.Message>(
        _ method: Method, body: ByteBuffer, as _: Reply.Type, idempotent: Bool, timeoutMilliseconds: Int64?
    ) async throws -> Reply {
        let timeout = TimeAmount.milliseconds(timeoutMilliseconds ?? configuration.timeoutMilliseconds)
        var policy = configuration.retry
        if !idempotent { policy.attempts = 1 }
        return try await policy.run({ _ in
            let connection = try await pickConnection()
            let reply = try await connection.send(method, body, timeout: timeout)
            do { return try MessageCodec.decode(Reply.self, from: reply) } catch {
                throw SextantError(.internal, "reply to \(method) does not decode: \(error)")
            }
        }, classify: { error in
            // A lost connection or an engine that is restarting: the pool reconnects on the next attempt.
            (error as? SextantError)?.code == .unavailable ? .retry : .fail
        })
    }

    // MARK: - Server and collections

    public func heartbeat() async throws -> UInt64 {
        try await call(.heartbeat, Sextant_V1_Empty(), as: Sextant_V1_HeartbeatReply.self, idempotent: true).nanoseconds
    }

    public func serverInfo() async throws -> Sextant_V1_ServerInfo {
        try await call(.serverInfo, Sextant_V1_Empty(), as: Sextant_V1_ServerInfo.self, idempotent: true)
    }

    /// Creates a collection (or, with `getOrCreate`, returns the existing one of that name).
    public func createCollection(
        name: String, dimension: Int, metric: DistanceMetric = .cosine, m: Int? = nil, efConstruction: Int? = nil,
        ef: Int? = nil, metadata: Metadata = [:], getOrCreate: Bool = false, capacity: Int? = nil,
        quantization: VectorQuantization? = nil, textIndex: TextIndexOptions? = nil, sparseIndexes: [SparseIndexOptions] = [],
        payloadIndexes: [String] = []
    ) async throws -> CollectionHandle {
        var request = Sextant_V1_CreateCollectionRequest()
        request.name = name
        request.dimension = UInt32(clamping: dimension)
        request.metric = metric.wire
        request.hnsw.m = UInt32(clamping: m ?? 0)
        request.hnsw.efConstruction = UInt32(clamping: efConstruction ?? 0)
        request.hnsw.ef = UInt32(clamping: ef ?? 0)
        request.metadata = metadata.wire
        request.getOrCreate = getOrCreate
        request.capacity = UInt64(clamping: capacity ?? 0)
        if let quantization { request.quantization = quantization.wire }
        if let textIndex { request.textIndex = textIndex.wire }
        request.sparseIndexes = sparseIndexes.map(\.wire)
        request.payloadIndexes = payloadIndexes
        let reply = try await call(.createCollection, request, as: Sextant_V1_CreateCollectionReply.self, idempotent: getOrCreate)
        return CollectionHandle(client: self, info: CollectionInfo(reply.collection))
    }

    public func getCollection(name: String) async throws -> CollectionHandle {
        CollectionHandle(client: self, info: try await collectionInfo(.name(name)))
    }

    public func getCollection(id: String) async throws -> CollectionHandle {
        CollectionHandle(client: self, info: try await collectionInfo(.id(id)))
    }

    func collectionInfo(_ reference: Sextant_V1_CollectionRef.OneOf_By) async throws -> CollectionInfo {
        var request = Sextant_V1_CollectionRequest()
        request.collection.by = reference
        return CollectionInfo(try await call(.getCollection, request, as: Sextant_V1_CollectionInfo.self, idempotent: true))
    }

    public func listCollections(offset: Int = 0, limit: Int? = nil) async throws -> (collections: [CollectionInfo], total: Int) {
        var request = Sextant_V1_ListCollectionsRequest()
        request.offset = UInt32(clamping: offset)
        if let limit { request.limit = UInt32(clamping: limit) }
        let reply = try await call(.listCollections, request, as: Sextant_V1_ListCollectionsReply.self, idempotent: true)
        return (reply.collections.map(CollectionInfo.init), Int(reply.total))
    }

    public func deleteCollection(name: String) async throws {
        var request = Sextant_V1_CollectionRequest()
        request.collection.name = name
        _ = try await call(.deleteCollection, request, as: Sextant_V1_Empty.self, idempotent: false)
    }

    public func stats(timeoutMilliseconds: Int64? = nil) async throws -> [CollectionStatistics] {
        let reply = try await call(.stats, Sextant_V1_Empty(), as: Sextant_V1_StatsReply.self, idempotent: true,
                                   timeoutMilliseconds: timeoutMilliseconds)
        return reply.collections.map {
            CollectionStatistics(
                id: $0.id, name: $0.name, liveRecords: Int($0.liveRecords), unindexedRecords: Int($0.unindexedRecords),
                indexedRecords: Int($0.indexedRecords), deletedAwaitingReclaim: Int($0.deletedAwaitingReclaim),
                lastLSN: $0.lastLsn, durableLSN: $0.durableLsn, checkpointLSN: $0.checkpointLsn, generation: $0.generation,
                walBytes: Int($0.walBytes), diskBytes: Int($0.diskBytes), capacitySlots: Int($0.capacitySlots),
                vectorBytes: Int($0.vectorBytes), graphBytes: Int($0.graphBytes), codeBytes: Int($0.codeBytes),
                heapBytes: Int($0.heapBytes), residentSearchBytes: Int($0.residentSearchBytes), isReplica: $0.replica,
                replicaLagMilliseconds: $0.replica && $0.replicaLagMilliseconds != .max ? $0.replicaLagMilliseconds : nil)
        }
    }

    /// Every endpoint's statistics (the primary first, then each replica), or
    /// nil for one that did not answer within `timeoutMilliseconds`: what a
    /// monitoring page shows, a replica's lag included.
    public func statsByEndpoint(timeoutMilliseconds: Int64 = 2_000) async -> [(endpoint: String, isPrimary: Bool, stats: [CollectionStatistics]?)] {
        var results: [(endpoint: String, isPrimary: Bool, stats: [CollectionStatistics]?)] = []
        results.append((configuration.address.description, true, try? await stats(timeoutMilliseconds: timeoutMilliseconds)))
        for replica in replicaEndpoints {
            results.append((replica.client.configuration.address.description, false,
                            try? await replica.client.stats(timeoutMilliseconds: timeoutMilliseconds)))
        }
        return results
    }

    /// Checkpoints one collection, or all.
    @discardableResult
    public func checkpoint(collection: String? = nil) async throws -> UInt64 {
        var request = Sextant_V1_CollectionRequest()
        if let collection { request.collection.name = collection }
        return try await call(.checkpoint, request, as: Sextant_V1_CheckpointReply.self, idempotent: true,
                              timeoutMilliseconds: 600_000).lsn
    }

    /// Asks the engine to write a consistent snapshot of every collection into
    /// `destination` (a folder on the engine's machine). Returns LSN and record
    /// count per collection id.
    public func snapshot(to destination: String) async throws -> [String: (lsn: UInt64, records: Int)] {
        var request = Sextant_V1_SnapshotRequest()
        request.destination = destination
        let reply = try await call(.snapshot, request, as: Sextant_V1_SnapshotReply.self, idempotent: false,
                                   timeoutMilliseconds: 600_000)
        var result: [String: (lsn: UInt64, records: Int)] = [:]
        for (id, lsn) in reply.lsnByCollectionID { result[id] = (lsn, Int(reply.recordsByCollectionID[id] ?? 0)) }
        return result
    }
}

/// Serialises reconnect attempts per pool slot without blocking threads.
final class AsyncSerialGate: Sendable {
    private let gate = Mutex<(busy: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func run<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let proceed = gate.withLock { state -> Bool in
                if !state.busy {
                    state.busy = true
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if proceed { continuation.resume() }
        }
        defer {
            let next = gate.withLock { state -> CheckedContinuation<Void, Never>? in
                if state.waiters.isEmpty {
                    state.busy = false
                    return nil
                }
                return state.waiters.removeFirst()
            }
            next?.resume()
        }
        return try await body()
    }
}

import SwiftProtobuf
import SextantPayload

/// A read replica as the client sees it: its own connections, the reads in
/// flight there, and how long it sits out after an UNAVAILABLE.
final class ReplicaEndpoint: Sendable {
    let client: SextantClient
    let inFlight = Atomic<Int>(0)
    private let unhealthyUntilMilliseconds = Atomic<UInt64>(0)
    /// A replica that answered UNAVAILABLE is skipped this long, then tried again.
    static let pauseMilliseconds: UInt64 = 1_000

    init(client: SextantClient) { self.client = client }

    func isHealthy(at now: UInt64) -> Bool { now >= unhealthyUntilMilliseconds.load(ordering: .relaxed) }

    func markUnhealthy() { unhealthyUntilMilliseconds.store(MonotonicClock.milliseconds() + Self.pauseMilliseconds, ordering: .relaxed) }
}
