import CSextantSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A task executor whose threads run at a lower scheduling priority (a positive
/// nice value, or SCHED_IDLE). Work started with `Task(executorPreference: executor)` runs its
/// synchronous stretches on these threads, so on a machine where queries keep
/// every core busy, the kernel hands the CPU to queries first and to this work
/// with what is left: writes slow down, reads stay fast.
public final class NicedExecutor: TaskExecutor, @unchecked Sendable {
    public let threadCount: Int
    public let priority: BackgroundPriority
    private let jobs = Mutex<[UnownedJob]>([])
    private let signal = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)

    public convenience init(threads: Int, niceness: Int32, name: String) {
        self.init(threads: threads, priority: .nice(niceness), name: name)
    }

    public init(threads: Int, priority: BackgroundPriority, name: String) {
        threadCount = max(1, threads)
        self.priority = priority
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

    /// One process-wide executor of one thread per priority, for occasional
    /// background jobs (checkpoints): its threads live as long as the process,
    /// so every engine or test in it shares them.
    public static func shared(priority: BackgroundPriority) -> NicedExecutor {
        sharedExecutors.withLock { table in
            if let existing = table[priority] { return existing }
            let created = NicedExecutor(threads: 1, priority: priority, name: "sextant-background")
            table[priority] = created
            return created
        }
    }
    private static let sharedExecutors = Mutex<[BackgroundPriority: NicedExecutor]>([:])

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
        priority.applyToCurrentThread()
        while true {
            while sem_wait(signal) != 0 && errno == EINTR {}
            guard let job = jobs.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) else { continue }
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }
}


/// The nice value a process was started with (`nice -n 10 sextant ingest …`,
/// as `sextant up` starts its background workers), made to stick.
///
/// Linux schedules threads, not processes, and Swift's global executor on
/// Linux (libdispatch) sets each worker thread's nice from its QoS class: 0 for
/// default work, whatever the process inherited. A niced worker therefore ran
/// at full priority next to the engine's query threads. Running the command's
/// work on a `NicedExecutor` at the inherited value restores what the operator
/// asked for.
public enum InheritedNiceness {
    /// The main thread's nice value (its thread id is the process id), which
    /// nothing in the process changes.
    public static let value: Int32 = {
        errno = 0
        let niceness = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(getpid()))
        return errno == 0 ? niceness : 0
    }()

    private static let executor: NicedExecutor? = value > 0
        ? NicedExecutor(threads: max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))), niceness: value, name: "sextant-niced") : nil

    /// Runs `body` on threads at the inherited nice value when it is positive,
    /// else as it would have run.
    public static func run<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        guard let executor else { return try await body() }
        return try await withTaskExecutorPreference(executor) { try await body() }
    }
}

/// The nice value `sextant up` starts its batch workers (ingest, scrape) with,
/// and `sextant bench ingest` measures at. On 2 cores with 8 closed-loop query
/// clients (docs/BENCHMARKS.md), a worker at 10 got a few percent of
/// the CPU: a 20,000-row batch with the built-in embedder took 15-35 s, and once
/// a write waited out the client's 30 s deadline. At 5 it takes 4-7 s.
public enum BatchNiceness {
    public static let workers: Int32 = 5
}

/// Threads that answer queries: short sleeps, short bursts of work, and a
/// latency budget of a millisecond or two.
public enum LatencySensitive {
    /// The slice asked for: 100 µs (the smallest Linux accepts) unless
    /// `SEXTANT_QUERY_SLICE_US` says otherwise; 0 leaves the kernel's default.
    public static let sliceNanoseconds: UInt64 = {
        guard let raw = getenv("SEXTANT_QUERY_SLICE_US"), let microseconds = UInt64(String(cString: raw)) else { return 100_000 }
        return microseconds * 1_000
    }()

    /// Asks for a short scheduler slice for the calling thread, so that on wake-up
    /// it preempts niced background work (indexing, ingestion) at once instead of
    /// after that work's slice. Measured on 2 cores during a 20,000-row ingest:
    /// mean query p99 5.1 vs 5.8 ms over three A/B rounds (docs/BENCHMARKS.md),
    /// less than the host's run-to-run spread. Returns false where the
    /// kernel has no per-task slices (before 6.12); nothing changes there.
    @discardableResult
    public static func markCurrentThread() -> Bool { sliceNanoseconds > 0 && sx_set_thread_slice(sliceNanoseconds) == 0 }
}
