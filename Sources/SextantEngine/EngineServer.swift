import Foundation
import Logging
import NIOCore
import NIOPosix
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
    public var maximumFrameBytes = ProtocolLimits.defaultMaximumFrameBytes
    public var maximumInFlight = ProtocolLimits.defaultMaximumInFlight
    public var maximumConnections = 16_384
    public var eventLoopThreads = System.coreCount
    public var indexerThreads = 1
    /// Nice value of the threads that decode and apply writes and of the indexer
    /// (0 = same priority as queries).
    public var writeNiceness: Int32 = 10
    /// Acknowledged records a collection may hold before they are indexed: queries
    /// scan these exactly, so a larger limit absorbs bigger write bursts at full
    /// speed and a smaller one keeps queries cheaper during ingest.
    public var unindexedLimit = StorageLimits.unindexedTailCapacity
    /// The bound while queries run; the same as `unindexedLimit` unless reads come first.
    public var unindexedLimitUnderReads = StorageLimits.unindexedTailCapacity
    /// How long a graceful shutdown waits for in-flight requests.
    public var drainTimeoutMilliseconds: Int64 = 30_000
    /// Identity reported in ServerInfo (the executable fills these in).
    public var serverVersion = "0.1.0"
    public var allocator = "unknown"
    public var kernels = "unknown"

    public init(dataDirectory: String) { self.dataDirectory = dataDirectory }
}

public enum EngineStartError: Error, CustomStringConvertible {
    case tokenRequired(String)
    case invalidAddress(String)

    public var description: String {
        switch self {
        case .tokenRequired(let host):
            return "refusing to listen on \(host) without a token: only loopback is served without one (use --token-file)"
        case .invalidAddress(let message): return message
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
        guard configuration.host != nil || configuration.unixSocketPath != nil else {
            throw EngineStartError.invalidAddress("nothing to listen on: give a TCP address or a Unix socket path")
        }
        Self.raiseFileLimit(logger: logger)
        StorageLog.setSink { [logger] message in logger.notice("\(message)") }
        let storage = try StorageEngine(
            directory: configuration.dataDirectory, indexerThreads: configuration.indexerThreads,
            indexerNiceness: configuration.writeNiceness, unindexedLimit: configuration.unindexedLimit,
            unindexedLimitUnderReads: configuration.unindexedLimitUnderReads)
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
        let writeExecutor = NicedExecutor(threads: System.coreCount, niceness: configuration.writeNiceness, name: "sextant-write")
        let router = Router(storage: storage, pool: pool, logger: logger, info: info, writeExecutor: writeExecutor)
        let connections = ConnectionRegistry(maximum: configuration.maximumConnections)
        let settings = ConnectionSettings(
            token: configuration.token ?? "", maximumFrameBytes: configuration.maximumFrameBytes,
            maximumInFlight: configuration.maximumInFlight, serverVersion: configuration.serverVersion)
        let bootstrap = ServerBootstrap(group: group)
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
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(
                            FrameDecoder(expectPreamble: true, maximumFrameBytes: configuration.maximumFrameBytes),
                            maximumBufferSize: configuration.maximumFrameBytes + 65_536))
                    try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(FrameEncoder()))
                    try channel.pipeline.syncOperations.addHandler(
                        ConnectionHandler(router: router, settings: settings, connections: connections, logger: logger))
                }
            }
        var listeners: [any Channel] = []
        var addresses: [SocketAddress] = []
        do {
            if let host = configuration.host {
                let channel = try await bootstrap.bind(host: host, port: configuration.port).get()
                listeners.append(channel)
                if let address = channel.localAddress { addresses.append(address) }
            }
            if let path = configuration.unixSocketPath {
                unlink(path)
                let channel = try await bootstrap.bind(unixDomainSocketPath: path).get()
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

struct ConnectionSettings: Sendable {
    let token: String
    let maximumFrameBytes: Int
    let maximumInFlight: Int
    let serverVersion: String
}

/// One connection: checks the preamble and Hello (token), then hands each
/// request to the router and writes each response when it is ready, in
/// whatever order they finish, tagged with the request's id.
final class ConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = FrameEvent
    typealias OutboundOut = Frame

    private enum State { case awaitingPreamble, awaitingHello, ready, closing }

    private let router: Router
    private let settings: ConnectionSettings
    private let connections: ConnectionRegistry
    private let logger: Logger
    private var state = State.awaitingPreamble
    private var inFlight = 0
    private var handshakeTimer: Scheduled<Void>?
    private var context: ChannelHandlerContext?
    /// Between a read's first frame and its channelReadComplete: responses
    /// answered inline are written, and flushed once at the end of the read. A
    /// pipelining client sends several requests per read, and each flush is a
    /// write system call.
    private var reading = false
    private var flushPending = false

    init(router: Router, settings: ConnectionSettings, connections: ConnectionRegistry, logger: Logger) {
        self.router = router
        self.settings = settings
        self.connections = connections
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let channel = context.channel
        handshakeTimer = context.eventLoop.scheduleTask(in: .milliseconds(ProtocolLimits.handshakeTimeoutMilliseconds)) {
            channel.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        handshakeTimer?.cancel()
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        reading = true
        switch unwrapInboundIn(data) {
        case .preamble:
            state = .awaitingHello
        case .oversized(let header, let length):
            state = .closing
            respond(context, header, .failure(RequestError(
                .resourceExhausted, "frame of \(length) bytes exceeds the \(settings.maximumFrameBytes)-byte limit; closing")))
            context.close(promise: nil)
        case .frame(let frame):
            handle(context, frame)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        reading = false
        if flushPending {
            flushPending = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Framing garbage: the stream cannot be re-synchronised, so the connection goes.
        if state != .closing { logger.info("closing connection from \(context.remoteAddress?.description ?? "?"): \(error)") }
        state = .closing
        context.close(promise: nil)
    }

    private func handle(_ context: ChannelHandlerContext, _ frame: Frame) {
        guard frame.header.kind == .request else {
            errorCaught(context: context, error: FrameError.malformedHeader("a response frame sent to the server"))
            return
        }
        switch state {
        case .awaitingPreamble, .closing:
            return
        case .awaitingHello:
            hello(context, frame)
        case .ready:
            guard frame.header.method != .hello else {
                respond(context, frame.header, .failure(RequestError(.failedPrecondition, "Hello was already sent")))
                return
            }
            guard inFlight < settings.maximumInFlight else {
                respond(context, frame.header, .failure(RequestError(
                    .resourceExhausted, "more than \(settings.maximumInFlight) requests in flight on this connection")))
                return
            }
            guard !connections.isRefusing else {
                respond(context, frame.header, .failure(RequestError(.unavailable, "the engine is shutting down")))
                return
            }
            inFlight += 1
            connections.requestStarted()
            let deadline: NIODeadline? =
                frame.header.deadlineMilliseconds > 0 ? .now() + .milliseconds(Int64(frame.header.deadlineMilliseconds)) : nil
            let header = frame.header
            let eventLoop = context.eventLoop
            let bound = NIOLoopBound(self, eventLoop: eventLoop)
            router.dispatch(frame, deadline: deadline) { result in
                if eventLoop.inEventLoop {
                    bound.value.finish(header, result)
                } else {
                    eventLoop.execute { bound.value.finish(header, result) }
                }
            }
        }
    }

    private func hello(_ context: ChannelHandlerContext, _ frame: Frame) {
        guard frame.header.method == .hello else {
            state = .closing
            respond(context, frame.header, .failure(RequestError(.unauthenticated, "the first request must be Hello")))
            context.close(promise: nil)
            return
        }
        let request: Sextant_V1_Hello
        do { request = try MessageCodec.decode(Sextant_V1_Hello.self, from: frame.body) } catch {
            state = .closing
            respond(context, frame.header, .failure(RequestError(.invalidArgument, "\(error)")))
            context.close(promise: nil)
            return
        }
        guard request.protocolVersion == ProtocolLimits.version else {
            state = .closing
            respond(context, frame.header, .failure(RequestError(
                .failedPrecondition, "protocol version \(request.protocolVersion) is not served (this engine speaks \(ProtocolLimits.version))")))
            context.close(promise: nil)
            return
        }
        guard Self.constantTimeEqual(request.token, settings.token) else {
            logger.info("rejected Hello from \(context.remoteAddress?.description ?? "?"): bad or missing token")
            state = .closing
            respond(context, frame.header, .failure(RequestError(.unauthenticated, "bad or missing token")))
            context.close(promise: nil)
            return
        }
        handshakeTimer?.cancel()
        state = .ready
        var reply = Sextant_V1_HelloReply()
        reply.serverVersion = settings.serverVersion
        reply.protocolVersion = ProtocolLimits.version
        reply.maxFrameBytes = UInt64(settings.maximumFrameBytes)
        reply.maxInFlight = UInt32(settings.maximumInFlight)
        reply.maxBatchRecords = UInt32(ProtocolLimits.maximumBatchRecords)
        respond(context, frame.header, .success(MessageCodec.encode(reply)))
    }

    private func finish(_ header: FrameHeader, _ result: Result<ByteBuffer, RequestError>) {
        inFlight -= 1
        connections.requestFinished()
        if case .failure(let error) = result, error.status == .internal {
            logger.error("\(header.method) failed: \(error.message)")
        }
        guard let context, state != .closing else { return }
        respond(context, header, result)
    }

    private func respond(_ context: ChannelHandlerContext, _ request: FrameHeader, _ result: Result<ByteBuffer, RequestError>) {
        let frame: Frame
        switch result {
        case .success(let body):
            frame = Frame(header: FrameHeader(kind: .response, status: .ok, method: request.method, requestID: request.requestID),
                          body: body)
        case .failure(let error):
            var detail = Sextant_V1_ErrorDetail()
            detail.message = error.message
            frame = Frame(header: FrameHeader(kind: .response, status: error.status, method: request.method, requestID: request.requestID),
                          body: MessageCodec.encode(detail))
        }
        // A response before a close is flushed at once: close drops unflushed writes.
        if reading && state != .closing {
            context.write(wrapOutboundOut(frame), promise: nil)
            flushPending = true
        } else {
            context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
        }
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let left = Array(a.utf8)
        let right = Array(b.utf8)
        var difference = UInt8(truncatingIfNeeded: left.count ^ right.count)
        for index in 0..<max(left.count, right.count) {
            difference |= (index < left.count ? left[index] : 0) ^ (index < right.count ? right[index] : 0)
        }
        return difference == 0
    }
}
