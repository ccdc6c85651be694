import Logging
import NIOCore
import SextantProtocol
import SextantStorage

struct ConnectionSettings: Sendable {
    let token: String
    let maximumFrameBytes: Int
    let maximumInFlight: Int
    let serverVersion: String
}

/// The relations between the engine's bounds, checked once at start: a
/// configuration that breaks one is refused with its reason, never discovered
/// as a write that cannot be logged.
enum EngineLimits {
    /// Bytes the frame decoder may buffer beyond one largest frame (the next
    /// frame's header and whatever arrived with it).
    static let decoderSlackBytes = 65_536

    /// How long a read carrying `min_lsn` waits for a collection behind it (a
    /// read replica catching up) before UNAVAILABLE sends the client elsewhere.
    static let minimumLSNWaitMilliseconds: Int64 = 2_000

    /// Responses one connection may have queued unsent: four of the largest
    /// frames. A client that reads slowly but reads stays far below it; one
    /// that stopped reading is closed here, or by the stall timeout first.
    static func maximumPendingResponseBytes(_ configuration: EngineConfiguration) -> Int {
        4 * configuration.maximumFrameBytes
    }

    static func check(_ configuration: EngineConfiguration) throws {
        precondition(ProtocolLimits.maximumBatchRecords == StorageLimits.maximumBatchRecords,
                     "the wire and storage share one batch bound")
        // A frame's records are re-encoded as one WAL entry: float32 vectors shrink to
        // float16, metadata grows by at most its length prefixes, so a frame fits an
        // entry with room to spare when the entry bound is 1.5 frames.
        guard configuration.maximumFrameBytes >= ProtocolLimits.headerBytes,
            configuration.maximumFrameBytes * 3 / 2 <= StorageLimits.maximumEntryBytes
        else {
            throw EngineStartError.invalidLimits(
                "frame bound \(configuration.maximumFrameBytes) bytes: a frame must fit a WAL entry (\(StorageLimits.maximumEntryBytes) bytes) with half again to spare")
        }
        // A batch of the largest ids (a delete or get by ids) fits in one frame.
        let largestIdBatch = ProtocolLimits.maximumBatchRecords * (StorageLimits.maximumIdBytes + 8)
        guard largestIdBatch <= configuration.maximumFrameBytes else {
            throw EngineStartError.invalidLimits(
                "frame bound \(configuration.maximumFrameBytes) bytes is smaller than a batch of \(ProtocolLimits.maximumBatchRecords) largest ids (\(largestIdBatch) bytes)")
        }
        guard configuration.maximumInFlight >= 1, configuration.maximumConnections >= 1 else {
            throw EngineStartError.invalidLimits("in-flight and connection bounds must be at least 1")
        }
        let tail = configuration.tailLimits
        guard tail.always >= 64, tail.underReads >= 64, tail.underReads <= tail.always else {
            throw EngineStartError.invalidLimits("unindexed bounds must be at least 64, the bound under reads at most the other")
        }
    }
}

/// Answers a connection's first frames: the preamble, then Hello with the
/// token. On success it removes itself, so every later frame goes straight to
/// the `RequestHandler`; on failure it answers with the reason and closes.
final class HandshakeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = FrameEvent
    typealias InboundOut = FrameEvent
    typealias OutboundOut = Frame

    private let settings: ConnectionSettings
    private let logger: Logger
    private var sawPreamble = false
    private var rejected = false
    private var timer: Scheduled<Void>?

    init(settings: ConnectionSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: .milliseconds(ProtocolLimits.handshakeTimeoutMilliseconds)) {
            channel.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) { timer?.cancel() }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !rejected else { return }
        switch unwrapInboundIn(data) {
        case .preamble:
            sawPreamble = true
        case .oversized(let header, let length):
            reject(context, header, .resourceExhausted,
                   "frame of \(length) bytes exceeds the \(settings.maximumFrameBytes)-byte limit; closing")
        case .frame(let frame):
            guard sawPreamble, frame.header.kind == .request else {
                context.fireErrorCaught(FrameError.malformedHeader("a response frame sent to the server"))
                return
            }
            hello(context, frame)
        }
    }

    private func hello(_ context: ChannelHandlerContext, _ frame: Frame) {
        guard frame.header.method == .hello else {
            return reject(context, frame.header, .unauthenticated, "the first request must be Hello")
        }
        let request: Sextant_V1_Hello
        do { request = try MessageCodec.decode(Sextant_V1_Hello.self, from: frame.body) } catch {
            return reject(context, frame.header, .invalidArgument, "\(error)")
        }
        guard request.protocolVersion == ProtocolLimits.version else {
            return reject(context, frame.header, .failedPrecondition,
                          "protocol version \(request.protocolVersion) is not served (this engine speaks \(ProtocolLimits.version))")
        }
        guard Tokens.equal(request.token, settings.token) else {
            logger.info("rejected Hello from \(context.remoteAddress?.description ?? "?"): bad or missing token")
            return reject(context, frame.header, .unauthenticated, "bad or missing token")
        }
        var reply = Sextant_V1_HelloReply()
        reply.serverVersion = settings.serverVersion
        reply.protocolVersion = ProtocolLimits.version
        reply.maxFrameBytes = UInt64(settings.maximumFrameBytes)
        reply.maxInFlight = UInt32(settings.maximumInFlight)
        reply.maxBatchRecords = UInt32(ProtocolLimits.maximumBatchRecords)
        context.writeAndFlush(wrapOutboundOut(ResponseFrame.success(frame.header, MessageCodec.encode(reply))), promise: nil)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    /// Answers with the reason, flushed before the close (a close drops unflushed writes).
    private func reject(_ context: ChannelHandlerContext, _ header: FrameHeader, _ status: StatusCode, _ message: String) {
        rejected = true
        context.writeAndFlush(wrapOutboundOut(ResponseFrame.failure(header, status, message)), promise: nil)
        context.close(promise: nil)
    }
}

/// Response frames, tagged with their request's method and id.
enum ResponseFrame {
    static func success(_ request: FrameHeader, _ body: ByteBuffer) -> Frame {
        Frame(header: FrameHeader(kind: .response, status: .ok, method: request.method, requestID: request.requestID), body: body)
    }

    static func failure(_ request: FrameHeader, _ status: StatusCode, _ message: String) -> Frame {
        var detail = Sextant_V1_ErrorDetail()
        detail.message = message
        return Frame(header: FrameHeader(kind: .response, status: status, method: request.method, requestID: request.requestID),
                     body: MessageCodec.encode(detail))
    }
}

/// A connection after its handshake: hands each request to the router and
/// writes each response when it is ready, in whatever order they finish,
/// tagged with the request's id.
final class RequestHandler: ChannelInboundHandler {
    typealias InboundIn = FrameEvent
    typealias OutboundOut = Frame

    private let router: Router
    private let settings: ConnectionSettings
    private let connections: ConnectionRegistry
    private let logger: Logger
    private var closing = false
    private var inFlight = 0
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

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        reading = true
        switch unwrapInboundIn(data) {
        case .preamble:
            errorCaught(context: context, error: FrameError.malformedHeader("a second preamble"))
        case .oversized(let header, let length):
            // Closing first: the answer is then flushed at once (a close drops unflushed writes).
            closing = true
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
        if !closing { logger.info("closing connection from \(context.remoteAddress?.description ?? "?"): \(error)") }
        closing = true
        context.close(promise: nil)
    }

    private func handle(_ context: ChannelHandlerContext, _ frame: Frame) {
        guard !closing else { return }
        guard frame.header.kind == .request else {
            errorCaught(context: context, error: FrameError.malformedHeader("a response frame sent to the server"))
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

    private func finish(_ header: FrameHeader, _ result: Result<ByteBuffer, RequestError>) {
        inFlight -= 1
        assert(inFlight >= 0, "a response per request")
        connections.requestFinished()
        if case .failure(let error) = result, error.status == .internal {
            logger.error("\(header.method) failed: \(error.message)")
        }
        guard let context, !closing else { return }
        respond(context, header, result)
    }

    private func respond(_ context: ChannelHandlerContext, _ request: FrameHeader, _ result: Result<ByteBuffer, RequestError>) {
        let frame: Frame
        switch result {
        case .success(let body): frame = ResponseFrame.success(request, body)
        case .failure(let error): frame = ResponseFrame.failure(request, error.status, error.message)
        }
        if reading && !closing {
            context.write(wrapOutboundOut(frame), promise: nil)
            flushPending = true
        } else {
            context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
        }
    }
}
