import NIOCore

/// A task executor that runs jobs on one NIO event loop.
///
/// A caller that runs on the event loop serving its engine connection writes
/// the request and is resumed by the reply on that same thread: no second
/// thread is woken per call. On a small machine that is most of a client's
/// CPU per query (a profile of `sextant load` put a third of both cores in the
/// load generator, half of it thread hand-offs). Tasks that call the client in
/// a loop (query clients, a server's handlers) should prefer one of
/// `SextantClient.executors`; anything that blocks must not, as it would stall
/// every connection on that loop. Such tasks must end before the client is
/// closed: a client that owns its event loops shuts them down, and a job
/// enqueued after that is dropped (NIO prints an error), so its task never resumes.
public final class EventLoopExecutor: TaskExecutor, Sendable {
    public let eventLoop: any EventLoop

    public init(_ eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
