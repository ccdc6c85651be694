import NIOCore
import NIOHTTPTypes

/// Closes a connection whose request has not fully arrived (head and body)
/// within a deadline of its first byte. The idle timeout is reset by every
/// byte, so a client trickling headers or a body one byte at a time would
/// otherwise hold its connection, and once its head is in, one of the API's
/// in-flight slots, for as long as it likes.
///
/// Two handlers share one clock: `RequestDeadlineHandler` sits after the HTTP
/// decoder and sees a request end; when added, it puts `FirstByteWatch` at the
/// front of the pipeline, which sees the raw (or TLS) bytes that start one.
final class RequestDeadlineHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    private let clock: RequestClock

    init(timeout: TimeAmount) {
        precondition(timeout > .zero, "a request deadline is positive")
        clock = RequestClock(timeout: timeout)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        try? context.pipeline.syncOperations.addHandler(FirstByteWatch(clock: clock), position: .first)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .end = unwrapInboundIn(data) { clock.requestArrived() }
        context.fireChannelRead(data)
    }

    func handlerRemoved(context: ChannelHandlerContext) { clock.requestArrived() }
}

/// Starts the clock on the first byte of a request.
final class FirstByteWatch: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private let clock: RequestClock

    init(clock: RequestClock) { self.clock = clock }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        clock.bytesArrived(on: context.channel)
        context.fireChannelRead(data)
    }
}

/// The deadline of the request being read, if any. Used only on the
/// connection's event loop (both handlers run there).
final class RequestClock {
    let timeout: TimeAmount
    private var pending: Scheduled<Void>?

    init(timeout: TimeAmount) { self.timeout = timeout }

    func bytesArrived(on channel: any Channel) {
        guard pending == nil else { return }
        pending = channel.eventLoop.scheduleTask(in: timeout) {
            channel.close(promise: nil)
        }
    }

    func requestArrived() {
        pending?.cancel()
        pending = nil
    }
}
