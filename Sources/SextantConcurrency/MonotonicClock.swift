#if canImport(Glibc)
import Glibc
#endif

/// Milliseconds of the monotonic clock, for deadlines and ages that must not
/// jump with the wall clock (leases, replicas sitting out, reader activity).
public enum MonotonicClock {
    public static func milliseconds() -> UInt64 { read(CLOCK_MONOTONIC) }

    /// The coarse clock costs a few nanoseconds (no hardware counter read) and
    /// ticks with the scheduler (4 ms at 250 Hz): enough for a 250 ms window
    /// checked on every query.
    public static func coarseMilliseconds() -> UInt64 { read(CLOCK_MONOTONIC_COARSE) }

    private static func read(_ clock: clockid_t) -> UInt64 {
        var spec = timespec()
        clock_gettime(clock, &spec)
        return UInt64(spec.tv_sec) &* 1_000 &+ UInt64(spec.tv_nsec / 1_000_000)
    }
}
