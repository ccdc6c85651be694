import CSextantSystem

/// How the engine's background threads (write processing and indexing) share
/// the CPU with the threads that answer queries.
///
/// On 2 cores saturated by closed-loop query clients, every cycle a write takes
/// is one a query waits for. Measured with `sextant load --clients 8` on
/// debian-minilm (docs/BENCHMARKS.md, "Queries while writes run"): at nice 10
/// the query p99 during a max-rate re-ingest is 2.3-2.6× the idle p99 with the
/// ingest at ~4,600 records/s; at nice 15 about 2× at ~2,300 records/s; under
/// SCHED_IDLE 1.1-1.6× at 200-700 records/s, and full speed the moment
/// queries leave a core idle, but no floor: `sextant bench ingest` under
/// SCHED_IDLE saw a write wait past its 30 s deadline while a checkpoint, which
/// holds writers, waited for a core. Hence nice 10 by default and SCHED_IDLE
/// only when asked for.
public enum BackgroundPriority: Sendable, Hashable, CustomStringConvertible {
    /// SCHED_IDLE: the threads run only on a core nothing else wants.
    case idle
    /// A nice value, 0 (same as queries) to 19.
    case nice(Int32)

    /// The engine's default: writes keep most of their speed under a full
    /// query load (the seed's 20,000-row batch in seconds).
    public static let `default` = BackgroundPriority.nice(10)

    /// Parses `idle` or a nice value 0-19.
    public init?(parsing text: String) {
        if text == "idle" {
            self = .idle
        } else if let value = Int32(text), (0...19).contains(value) {
            self = .nice(value)
        } else {
            return nil
        }
    }

    public var description: String {
        switch self {
        case .idle: return "idle"
        case .nice(let value): return "nice \(value)"
        }
    }

    /// Applies the priority to the calling thread (Linux schedules threads, not
    /// processes). Returns false when the kernel refused; the thread then keeps
    /// running at its previous priority, which is slower for queries, not wrong.
    @discardableResult
    public func applyToCurrentThread() -> Bool {
        switch self {
        case .idle: return sx_set_thread_idle_policy() == 0
        case .nice(let value): return value == 0 || sx_set_thread_niceness(value) == 0
        }
    }

    /// Whether the calling thread runs below query priority (a positive nice
    /// value or SCHED_IDLE): work on it should pause now and then.
    public static var currentThreadIsBackground: Bool {
        var policy: Int32 = 0
        var niceness: Int32 = 0
        guard sx_get_thread_scheduling(&policy, &niceness) == 0 else { return false }
        return niceness > 0 || policy != 0
    }

    /// Runs `body` on the calling thread at this priority, then restores the
    /// thread's own: for background work on a shared pool thread (a checkpoint's
    /// file writes on a Dispatch worker), which would otherwise run at query priority.
    public func whileApplied<T>(_ body: () throws -> T) rethrows -> T {
        var policy: Int32 = 0
        var niceness: Int32 = 0
        guard sx_get_thread_scheduling(&policy, &niceness) == 0 else { return try body() }
        applyToCurrentThread()
        defer { _ = sx_set_thread_scheduling(policy, niceness) }
        return try body()
    }
}
