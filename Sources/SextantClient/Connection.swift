import NIOCore
import NIOPosix
import NIOSSL
import SextantProtocol
import Synchronization

/// A typed failure from the engine (or from the client's side of the wire).
public struct SextantError: Error, Sendable, Equatable, CustomStringConvertible {
    public let code: StatusCode
    public let message: String

    public init(_ code: StatusCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}

/// Where the engine listens: "host:port", "[v6]:port", "tls://host:port"
/// (TLS, the server's certificate verified), or "unix:/path".
public enum EngineAddress: Sendable, Equatable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case tls(host: String, port: Int)
    case unix(path: String)

    public init(parsing text: String) throws {
        if text.hasPrefix("unix:") {
            self = .unix(path: String(text.dropFirst(5)))
            return
        }
        if text.hasPrefix("tls://") {
            guard case .tcp(let host, let port) = try EngineAddress(parsing: String(text.dropFirst(6))) else {
                throw SextantError(.invalidArgument, "engine address '\(text)' is not tls://host:port")
            }
            self = .tls(host: host, port: port)
            return
        }
        let hostPart: Substring
        let portPart: Substring
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            hostPart = text[text.index(after: text.startIndex)..<close]
            portPart = text[text.index(after: close)...].dropFirst()
        } else if let colon = text.lastIndex(of: ":") {
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
        } else {
            hostPart = Substring(text)
            portPart = "7700"
        }
        guard let port = Int(portPart), (0...65_535).contains(port), !hostPart.isEmpty else {
            throw SextantError(.invalidArgument, "engine address '\(text)' is not host:port or unix:/path")
        }
        self = .tcp(host: String(hostPart), port: port)
    }

    public var description: String {
        switch self {
        case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .tls(let host, let port): return "tls://" + EngineAddress.tcp(host: host, port: port).description
        case .unix(let path): return "unix:\(path)"
        }
    }
}

enum ClientOutbound {
    case preamble
    case frame(Frame)
}

struct ClientFrameEncoder: MessageToByteEncoder {
    typealias OutboundIn = ClientOutbound

    func encode(data: ClientOutbound, out: inout ByteBuffer) throws {
        switch data {
        case .preamble: out.writeInteger(ProtocolLimits.preamble)
        case .frame(let frame): FrameEncoder.write(frame, into: &out)
        }
    }
}

/// Matches responses to requests by id; any number may be in flight, and they
/// may come back in any order.
final class ResponseHandler: ChannelDuplexHandler {
    typealias InboundIn = FrameEvent
    typealias OutboundIn = Outgoing
    typealias OutboundOut = ClientOutbound

    enum Outgoing {
        case preamble
        case request(PendingRequest)
    }

    struct PendingRequest {
        var frame: Frame
        let promise: EventLoopPromise<Frame>
        let timeout: TimeAmount?
    }

    private var pending: [UInt64: (EventLoopPromise<Frame>, Scheduled<Void>?)] = [:]
    private var nextID: UInt64 = 1
    private var closedError: SextantError?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .frame(let frame) = unwrapInboundIn(data), frame.header.kind == .response else { return }
        guard let (promise, timer) = pending.removeValue(forKey: frame.header.requestID) else { return }  // timed out already
        timer?.cancel()
        promise.succeed(frame)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .request(var request) = unwrapOutboundIn(data) else {
            context.write(wrapOutboundOut(.preamble), promise: promise)
            return
        }
        if let closedError {
            request.promise.fail(closedError)
            promise?.fail(closedError)
            return
        }
        let id = nextID
        nextID += 1
        request.frame.header.requestID = id
        var timer: Scheduled<Void>? = nil
        if let timeout = request.timeout {
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            timer = context.eventLoop.scheduleTask(in: timeout) {
                guard let (expired, _) = bound.value.pending.removeValue(forKey: id) else { return }
                expired.fail(SextantError(.deadlineExceeded, "no response within \(timeout.nanoseconds / 1_000_000) ms"))
            }
        }
        pending[id] = (request.promise, timer)
        context.write(wrapOutboundOut(.frame(request.frame)), promise: promise)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(SextantError(.unavailable, "connection to the engine closed"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(SextantError(.unavailable, "connection to the engine failed: \(error)"))
        context.close(promise: nil)
    }

    private func failAll(_ error: SextantError) {
        closedError = error
        let failed = pending
        pending.removeAll()
        for (promise, timer) in failed.values {
            timer?.cancel()
            promise.fail(error)
        }
    }
}

/// One TCP or Unix connection after a successful Hello.
final class Connection: Sendable {
    let channel: any Channel
    let hello: Sextant_V1_HelloReply
    /// A flush is queued on the event loop: requests written meanwhile by callers
    /// on that loop go out with it, in one write system call.
    private let flushQueued: NIOLoopBoundBox<Bool>

    private init(channel: any Channel, hello: Sextant_V1_HelloReply) {
        self.channel = channel
        self.hello = hello
        flushQueued = .makeBoxSendingValue(false, eventLoop: channel.eventLoop)
    }

    var isActive: Bool { channel.isActive }

    static func open(
        _ address: EngineAddress, group: any EventLoopGroup, token: String?, clientName: String, maximumFrameBytes: Int,
        timeout: TimeAmount, tls: NIOSSLContext? = nil
    ) async throws -> Connection {
        let serverName: String?
        if case .tls(let host, _) = address { serverName = host } else { serverName = nil }
        if case .tls = address, tls == nil {
            throw SextantError(.invalidArgument, "\(address) needs a TLS context (ClientConfiguration.caFile or the system store)")
        }
        let bootstrap = ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls, case .tls = address {
                        // An IP address is verified against the certificate's IP SANs; SNI carries names only.
                        let isAddress = serverName.map { $0.contains(":") || $0.allSatisfy { $0.isNumber || $0 == "." } } ?? true
                        try channel.pipeline.syncOperations.addHandler(
                            try NIOSSLClientHandler(context: tls, serverHostname: isAddress ? nil : serverName))
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(
                            FrameDecoder(expectPreamble: false, maximumFrameBytes: maximumFrameBytes),
                            maximumBufferSize: maximumFrameBytes + 65_536))
                    try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(ClientFrameEncoder()))
                    try channel.pipeline.syncOperations.addHandler(ResponseHandler())
                }
            }
        let channel: any Channel
        do {
            switch address {
            case .tcp(let host, let port), .tls(let host, let port): channel = try await bootstrap.connect(host: host, port: port).get()
            case .unix(let path): channel = try await bootstrap.connect(unixDomainSocketPath: path).get()
            }
        } catch {
            throw SextantError(.unavailable, "cannot connect to the engine at \(address): \(error)")
        }
        channel.writeAndFlush(ResponseHandler.Outgoing.preamble, promise: nil)
        var request = Sextant_V1_Hello()
        request.clientName = clientName
        request.token = token ?? ""
        request.protocolVersion = ProtocolLimits.version
        do {
            let reply = try await send(channel, .hello, MessageCodec.encode(request), timeout: timeout)
            return Connection(channel: channel, hello: try MessageCodec.decode(Sextant_V1_HelloReply.self, from: reply))
        } catch {
            try? await channel.close()
            throw error
        }
    }

    func send(_ method: Method, _ body: ByteBuffer, timeout: TimeAmount?) async throws -> ByteBuffer {
        try await Self.send(channel, method, body, timeout: timeout, flushQueued: flushQueued)
    }

    /// Whether the caller runs on this connection's event loop thread.
    var isOnCurrentThread: Bool { channel.eventLoop.inEventLoop }

    /// With `flushQueued`, a caller on the channel's loop (one preferring the
    /// loop's executor) writes and queues one flush behind the tasks already
    /// queued there: the replies of one read resume several callers, and their
    /// next requests then share a write. Anyone else flushes at once.
    private static func send(_ channel: any Channel, _ method: Method, _ body: ByteBuffer, timeout: TimeAmount?,
                             flushQueued: NIOLoopBoundBox<Bool>? = nil) async throws -> ByteBuffer
    {
        let promise = channel.eventLoop.makePromise(of: Frame.self)
        let deadline = timeout.map { UInt32(clamping: $0.nanoseconds / 1_000_000) } ?? 0
        let frame = Frame(header: FrameHeader(kind: .request, method: method, requestID: 0, deadlineMilliseconds: deadline),
                          body: body)
        let request = ResponseHandler.Outgoing.request(.init(frame: frame, promise: promise, timeout: timeout))
        // A channel that closed before the write reached the response handler
        // (a TLS handshake the client itself refused) has no handler left to
        // fail the request or time it out: the failed write does it (a promise
        // completed twice keeps its first result).
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { error in
            promise.fail(SextantError(.unavailable, "connection to the engine closed: \(error)"))
        }
        if let flushQueued, channel.eventLoop.inEventLoop {
            channel.write(request, promise: written)
            if !flushQueued.value {
                flushQueued.value = true
                channel.eventLoop.execute {
                    flushQueued.value = false
                    channel.flush()
                }
            }
        } else {
            channel.writeAndFlush(request, promise: written)
        }
        let response = try await promise.futureResult.get()
        guard response.header.status == .ok else {
            let detail = (try? MessageCodec.decode(Sextant_V1_ErrorDetail.self, from: response.body))?.message ?? ""
            throw SextantError(response.header.status, detail)
        }
        return response.body
    }

    func close() async { try? await channel.close() }
}
