import Logging
import NIOCore

/// Closes a connection that leaves its opening handshake, or any frame it has
/// begun, unfinished for longer than `timeout`: a slow-loris client that
/// trickles bytes (or sends half a frame and stops) would otherwise hold a
/// connection slot and a partial buffer for ever. An idle connection between
/// frames is fine, since pooled clients keep connections open between calls.
///
/// It reads the stream's framing itself (a 4-byte preamble, then frames of a
/// 4-byte big-endian length and that many bytes), so it sits before the
/// decoder and never copies.
final class ReadDeadlineHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    enum Position: Equatable {
        case preamble(remaining: Int)
        /// Length bytes read so far of the next frame; empty: between frames.
        case length([UInt8])
        case body(remaining: Int)
    }

    let timeout: TimeAmount
    let logger: Logger
    private(set) var position = Position.preamble(remaining: 4)
    private var handshakeDone = false
    private var timer: Scheduled<Void>?

    init(timeout: TimeAmount, logger: Logger) {
        self.timeout = timeout
        self.logger = logger
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context)  // the handshake has the same deadline as a frame
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        advance(over: buffer.readableBytesView)
        if position == .length([]) && handshakeDone {
            timer?.cancel()
            timer = nil
        } else {
            arm(context)
        }
        context.fireChannelRead(data)
    }

    /// Walks the stream's framing over `bytes`.
    func advance<Bytes: Collection>(over bytes: Bytes) where Bytes.Element == UInt8, Bytes.Index == Int {
        var index = bytes.startIndex
        while index < bytes.endIndex {
            switch position {
            case .preamble(let remaining):
                let taken = min(remaining, bytes.endIndex - index)
                index += taken
                position = remaining - taken == 0 ? .length([]) : .preamble(remaining: remaining - taken)
            case .length(var prefix):
                prefix.append(bytes[index])
                index += 1
                if prefix.count == 4 {
                    let length = prefix.reduce(0) { $0 << 8 | Int($1) }
                    position = length == 0 ? .length([]) : .body(remaining: length)
                    if length == 0 { handshakeDone = true }
                } else {
                    position = .length(prefix)
                }
            case .body(let remaining):
                let taken = min(remaining, bytes.endIndex - index)
                index += taken
                if remaining - taken == 0 {
                    position = .length([])
                    handshakeDone = true
                } else {
                    position = .body(remaining: remaining - taken)
                }
            }
        }
    }

    private func arm(_ context: ChannelHandlerContext) {
        guard timer == nil else { return }
        let timeout = self.timeout
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            timer = nil
            logger.info("closing connection from \(context.remoteAddress?.description ?? "?"): no complete frame within \(timeout.nanoseconds / 1_000_000) ms")
            context.close(promise: nil)
        }
    }
}

/// Bounds what a connection that stops reading its responses can cost: once
/// its unsent responses pass the channel's high-water mark, the engine stops
/// reading its requests (so it queues no more work), and if it stays stalled
/// for `timeout` the connection is closed. Requests already read still answer;
/// their responses may queue up to `maximumPendingBytes`, past which the
/// connection is closed at once rather than hold more.
final class StalledReaderHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let timeout: TimeAmount
    let maximumPendingBytes: Int
    let logger: Logger
    private var timer: Scheduled<Void>?
    /// Bytes handed to the socket's side of the pipeline and not yet written out.
    private var pendingBytes = 0

    init(timeout: TimeAmount, maximumPendingBytes: Int, logger: Logger) {
        precondition(maximumPendingBytes > 0, "a positive bound")
        self.timeout = timeout
        self.maximumPendingBytes = maximumPendingBytes
        self.logger = logger
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let bytes = unwrapOutboundIn(data).readableBytes
        pendingBytes += bytes
        if pendingBytes > maximumPendingBytes {
            logger.info("closing connection from \(context.remoteAddress?.description ?? "?"): \(pendingBytes) bytes of responses unread")
            promise?.fail(ChannelError.outputClosed)
            context.close(promise: nil)
            return
        }
        let written = promise ?? context.eventLoop.makePromise()
        written.futureResult.assumeIsolated().whenComplete { [self] _ in
            pendingBytes -= bytes
            assert(pendingBytes >= 0, "every written byte counted once")
        }
        context.write(data, promise: written)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            timer?.cancel()
            timer = nil
            context.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
        } else if timer == nil {
            context.channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
            let timeout = self.timeout
            timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
                timer = nil
                logger.info("closing connection from \(context.remoteAddress?.description ?? "?"): it read none of its responses for \(timeout.nanoseconds / 1_000_000) ms")
                context.close(promise: nil)
            }
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }
}
