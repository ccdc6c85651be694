#if canImport(Glibc)
import Glibc
#endif

/// Background work that shares the CPU with queries pauses briefly every
/// `workMicroseconds` while they run. A sleep, unlike sched_yield (which EEVDF
/// charges as a spent slice), gives the core to a waiting query at once instead
/// of after this thread's slice, which a 250 Hz tick stretches to 4 ms: a
/// scheduler trace of the engine under `sextant load` showed a write thread
/// running 3.97 ms straight while both event loops waited, which was the query
/// p99. One record linked (~150 µs) is one step of the indexer's loop; a write
/// steps once per record in decode, validation and apply.
public struct ReaderPacer: Sendable {
    public static let workMicroseconds: UInt64 = 200
    public static let pauseMicroseconds: UInt32 = 20
    /// Whether queries ran recently; without them the pacer never pauses.
    public let readers: Bool
    private var since: UInt64

    public init(readers: Bool) {
        self.readers = readers
        since = Self.microseconds()
    }

    /// Pauses if queries run and the work since the last pause passed the step.
    public mutating func step() {
        guard readers else { return }
        let now = Self.microseconds()
        guard now &- since >= Self.workMicroseconds else { return }
        usleep(Self.pauseMicroseconds)
        since = Self.microseconds()
    }

    private static func microseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) &* 1_000_000 &+ UInt64(spec.tv_nsec / 1_000)
    }
}
