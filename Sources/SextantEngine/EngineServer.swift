import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import SextantConcurrency
import SextantProtocol
import SextantStorage
import Synchronization

public struct EngineConfiguration: Sendable {
    public var dataDirectory: String
    /// TCP address; nil for Unix socket only.
    public var host: String? = "127.0.0.1"
    public var port = 7700
    public var unixSocketPath: String?
    /// Clients must present this in Hello. Required to listen beyond loopback.
    public var token: String?
    /// Certificate chain and key (PEM) for TLS on the TCP listener (the Unix socket stays plain).
    public var tlsCertificatePath: String?
    public var tlsKeyPath: String?
    /// Serve a token in clear beyond loopback (no TLS). Off: such a listener is refused.
    public var insecurePlaintext = false
    public var maximumFrameBytes = ProtocolLimits.defaultMaximumFrameBytes
    public var maximumInFlight = ProtocolLimits.defaultMaximumInFlight
    public var maximumConnections = 16_384
    public var eventLoopThreads = System.coreCount
    /// Threads linking records into graphs: every core while no query runs (a bulk
    /// load), one paced thread while queries do.
    public var indexerThreads = System.coreCount
    /// Scheduling priority of the threads that decode and apply writes, of the
    /// indexer and of checkpoints (nice 10 by default; SCHED_IDLE puts queries
    /// strictly first).
    public var backgroundPriority = BackgroundPriority.default
    /// Acknowledged records a collection may hold before they are indexed, always
    /// and while queries run: queries scan these exactly, so a larger bound absorbs
    /// bigger write bursts at full speed and a smaller one keeps queries cheaper
    /// during ingest.
    public var tailLimits = TailLimits()
    /// Collections at least this large index a field they are often filtered on by themselves (0: never).
    public var automaticIndexRecords = StorageLimits.automaticPayloadIndexRecords
    /// How long a graceful shutdown waits for in-flight requests.
    public var drainTimeoutMilliseconds: Int64 = 30_000
    /// A connection's handshake, and any frame once begun, must arrive whole within this.
    public var frameReadTimeoutMilliseconds: Int64 = 10_000
    /// A connection that reads none of its responses for this long is closed.
    public var stalledWriteTimeoutMilliseconds: Int64 = 30_000
    /// Identity reported in ServerInfo (the executable fills these in).
    public var serverVersion = "0.1.0"
    public var allocator = "unknown"
    public var kernels = "unknown"
    /// A read replica: the location whose shipped log it follows. Writes are
    /// refused (FAILED_PRECONDITION, naming it); every read is served.
    public var readReplicaOf: String?
    /// Asked before a change to the collections is applied and again before it
    /// is acknowledged: a message means no (a primary that does not hold its
    /// lease), answered UNAVAILABLE.
    public var writeGate: (@Sendable () -> String?)?
    /// Awaited after each write is durable, before it is acknowledged
    /// (`--ack-after-ship`: until its entry is in object storage).
    public var acknowledgementGate: Collection.AcknowledgementGate?
    /// Runs once the collections are open and before anything listens (a
    /// primary applying its shipped log after a restore, a follower catching up).
    public var beforeListening: (@Sendable (StorageEngine) async throws -> Void)?

    public init(dataDirectory: String) { self.dataDirectory = dataDirectory }
}

public enum EngineStartError: Error, CustomStringConvertible {
    case tokenRequired(String)
    case plaintextRefused(String)
    case invalidAddress(String)
    case invalidLimits(String)

    public var description: String {
        switch self {
        case .tokenRequired(let host):
            return "refusing to listen on \(host) without a token: only loopback is served without one (use --token-file)"
        case .plaintextRefused(let host):
            return "refusing to listen on \(host) without TLS: the token and every record would cross the network in clear "
                + "(use --tls-cert and --tls-key, or --insecure-plaintext inside a network you trust)"
        case .invalidAddress(let message), .invalidLimits(let message): return message
        }
    }
}

/// The engine process's network face: one SwiftNIO server (TCP and/or a Unix
/// socket) in front of the storage engine. See proto/PROTOCOL.md.
public final class EngineServer: Sendable {
    public let storage: StorageEngine
    public let addresses: [SocketAddress]
    private let group: MultiThreadedEventLoopGroup
    private let pool: NIOThreadPool
    private let listeners: [any Channel]
    private let connections: ConnectionRegistry
    private let logger: Logger
    private let configuration: EngineConfiguration

    private init(storage: StorageEngine, addresses: [SocketAddress], group: MultiThreadedEventLoopGroup, pool: NIOThreadPool,
                 listeners: [any Channel], connections: ConnectionRegistry, logger: Logger, configuration: EngineConfiguration) {
        self.storage = storage
        self.addresses = addresses
        self.group = group
        self.pool = pool
        self.listeners = listeners
        self.connections = connections
        self.logger = logger
        self.configuration = configuration
    }

    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    public static func start(_ configuration: EngineConfiguration, logger: Logger) async throws -> EngineServer {
        if let host = configuration.host, !isLoopback(host), (configuration.token ?? "").isEmpty {
            throw EngineStartError.tokenRequired(host)
        }
        guard (configuration.tlsCertificatePath == nil) == (configuration.tlsKeyPath == nil) else {
            throw EngineStartError.invalidAddress("TLS needs both a certificate and a key (--tls-cert and --tls-key)")
        }
        if let host = configuration.host, !isLoopback(host), configuration.tlsCertificatePath == nil, !configuration.insecurePlaintext {
            throw EngineStartError.plaintextRefused(host)
        }
        let tls = try configuration.tlsCertificatePath.flatMap { certificate in
            try configuration.tlsKeyPath.map { try SextantTLS.serverContext(certificatePath: certificate, keyPath: $0) }
        }
        guard configuration.host != nil || configuration.unixSocketPath != nil else {
            throw EngineStartError.invalidAddress("nothing to listen on: give a TCP address or a Unix socket path")
        }
        try EngineLimits.check(configuration)
        Self.raiseFileLimit(logger: logger)
        StorageLog.setSink { [logger] message in logger.notice("\(message)") }
        let storage = try StorageEngine(
            directory: configuration.dataDirectory, indexerThreads: configuration.indexerThreads,
            indexerPriority: configuration.backgroundPriority, tailLimits: configuration.tailLimits,
            automaticIndexRecords: configuration.automaticIndexRecords, acknowledgementGate: configuration.acknowledgementGate)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.eventLoopThreads))
        // Queries run on the event loops (small ones inline): give them short slices.
        for loop in group.makeIterator() { loop.execute { LatencySensitive.markCurrentThread() } }
        let pool = NIOThreadPool(numberOfThreads: max(1, System.coreCount))
        pool.start()
        var info = Sextant_V1_ServerInfo()
        info.serverVersion = configuration.serverVersion
        info.protocolVersion = ProtocolLimits.version
        info.allocator = configuration.allocator
        info.kernels = configuration.kernels
        info.walIo = storage.io.backend.rawValue
        info.maxFrameBytes = UInt64(configuration.maximumFrameBytes)
        info.maxBatchRecords = UInt32(ProtocolLimits.maximumBatchRecords)
        info.maxInFlight = UInt32(configuration.maximumInFlight)
        let writeExecutor = NicedExecutor(threads: System.coreCount, priority: configuration.backgroundPriority, name: "sextant-write")
        if let beforeListening = configuration.beforeListening { try await beforeListening(storage) }
        let router = Router(storage: storage, pool: pool, logger: logger, info: info, writeExecutor: writeExecutor,
                            readReplicaOf: configuration.readReplicaOf, writeGate: configuration.writeGate)
        let connections = ConnectionRegistry(maximum: configuration.maximumConnections)
        let settings = ConnectionSettings(
            token: configuration.token ?? "", maximumFrameBytes: configuration.maximumFrameBytes,
            maximumInFlight: configuration.maximumInFlight, serverVersion: configuration.serverVersion)
        func bootstrap(tls: NIOSSLContext?) -> ServerBootstrap {
            ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 1024)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelOption(.maxMessagesPerRead, value: 16)
                .childChannelInitializer { channel in
                    guard connections.admit() else {
                        logger.warning("connection refused: \(configuration.maximumConnections) connections open")
                        return channel.close()
                    }
                    channel.closeFuture.whenComplete { _ in connections.release() }
                    return channel.eventLoop.makeCompletedFuture {
                        let operations = channel.pipeline.syncOperations
                        if let tls { try operations.addHandler(NIOSSLServerHandler(context: tls)) }
                        try operations.addHandler(ReadDeadlineHandler(
                            timeout: .milliseconds(configuration.frameReadTimeoutMilliseconds), logger: logger))
                        try operations.addHandler(StalledReaderHandler(
                            timeout: .milliseconds(configuration.stalledWriteTimeoutMilliseconds),
                            maximumPendingBytes: EngineLimits.maximumPendingResponseBytes(configuration), logger: logger))
                        try operations.addHandler(
                            ByteToMessageHandler(
                                FrameDecoder(expectPreamble: true, maximumFrameBytes: configuration.maximumFrameBytes),
                                maximumBufferSize: configuration.maximumFrameBytes + EngineLimits.decoderSlackBytes))
                        try operations.addHandler(MessageToByteHandler(FrameEncoder()))
                        try operations.addHandler(HandshakeHandler(settings: settings, logger: logger))
                        try operations.addHandler(RequestHandler(router: router, settings: settings, connections: connections, logger: logger))
                    }
                }
        }
        var listeners: [any Channel] = []
        var addresses: [SocketAddress] = []
        do {
            if let host = configuration.host {
                let channel = try await bootstrap(tls: tls).bind(host: host, port: configuration.port).get()
                listeners.append(channel)
                if let address = channel.localAddress { addresses.append(address) }
            }
            if let path = configuration.unixSocketPath {
                unlink(path)
                let channel = try await bootstrap(tls: nil).bind(unixDomainSocketPath: path).get()
                chmod(path, 0o660)
                listeners.append(channel)
                if let address = channel.localAddress { addresses.append(address) }
            }
        } catch {
            for listener in listeners { try? await listener.close() }
            try? await group.shutdownGracefully()
            throw error
        }
        return EngineServer(storage: storage, addresses: addresses, group: group, pool: pool, listeners: listeners,
                            connections: connections, logger: logger, configuration: configuration)
    }

    /// Stop accepting, let in-flight requests finish (up to the drain timeout),
    /// checkpoint every collection, close.
    public func shutdown() async throws {
        logger.notice("shutting down: no new connections; draining \(connections.inFlight) in-flight requests")
        for listener in listeners { try? await listener.close() }
        if let path = configuration.unixSocketPath { unlink(path) }
        let deadline = Date().addingTimeInterval(Double(configuration.drainTimeoutMilliseconds) / 1000)
        while connections.inFlight > 0 && Date() < deadline { try await Task.sleep(for: .milliseconds(5)) }
        connections.refuseNewRequests()
        logger.notice("checkpointing \(storage.list().count) collections")
        try await storage.close()
        try await group.shutdownGracefully()
        try await pool.shutdownGracefully()
        logger.notice("engine stopped")
    }

    /// Many idle clients need many descriptors: raise the soft limit to the hard one.
    static func raiseFileLimit(logger: Logger) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) != 0 {
            logger.warning("could not raise the open-file limit")
        }
    }
}

/// Counts connections and requests in flight across the whole server.
final class ConnectionRegistry: Sendable {
    private let open = Atomic<Int>(0)
    private let requests = Atomic<Int>(0)
    private let refusing = Atomic<Bool>(false)
    let maximum: Int

    init(maximum: Int) { self.maximum = maximum }

    func admit() -> Bool {
        if open.add(1, ordering: .relaxed).newValue > maximum {
            open.subtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    func release() { open.subtract(1, ordering: .relaxed) }
    var count: Int { open.load(ordering: .relaxed) }
    func requestStarted() { requests.add(1, ordering: .relaxed) }
    func requestFinished() { requests.subtract(1, ordering: .relaxed) }
    var inFlight: Int { requests.load(ordering: .relaxed) }
    func refuseNewRequests() { refusing.store(true, ordering: .relaxed) }
    var isRefusing: Bool { refusing.load(ordering: .relaxed) }
}
