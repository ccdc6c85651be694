import CSextantSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A task executor whose threads run at a lower scheduling priority (a positive
/// nice value). Work started with `Task(executorPreference: executor)` runs its
/// synchronous stretches on these threads, so on a machine where queries keep
/// every core busy, the kernel hands the CPU to queries first and to this work
/// with what is left: writes slow down, reads stay fast.
public final class NicedExecutor: TaskExecutor, @unchecked Sendable {
    public let threadCount: Int
    public let niceness: Int32
    private let jobs = Mutex<[UnownedJob]>([])
    private let signal = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)

    public init(threads: Int, niceness: Int32, name: String) {
        threadCount = max(1, threads)
        self.niceness = niceness
        sem_init(signal, 0, 0)
        for _ in 0..<threadCount {
            let context = Unmanaged.passRetained(Box(executor: self, name: name))
            var handle = pthread_t()
            let started = pthread_create(&handle, nil, { argument in
                guard let argument else { return nil }
                let box = Unmanaged<Box>.fromOpaque(argument).takeRetainedValue()
                box.executor.run(name: box.name)
                return nil
            }, context.toOpaque())
            precondition(started == 0, "cannot start executor thread")
            pthread_detach(handle)
        }
    }

    private final class Box {
        let executor: NicedExecutor
        let name: String
        init(executor: NicedExecutor, name: String) {
            self.executor = executor
            self.name = name
        }
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        jobs.withLock { $0.append(unowned) }
        sem_post(signal)
    }

    private func run(name: String) {
        sx_set_thread_name(name)
        if niceness != 0 { _ = sx_set_thread_niceness(niceness) }
        while true {
            while sem_wait(signal) != 0 && errno == EINTR {}
            guard let job = jobs.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) else { continue }
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}

