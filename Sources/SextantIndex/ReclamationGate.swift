import CSextantKernels

#if canImport(Glibc)
import Glibc
#endif

/// Read-side grace periods, in the spirit of userspace RCU.
///
/// Readers (searches, record fetches) never lock. A writer that wants to reuse
/// a slot first makes it unreachable, then calls `synchronize()`, which returns
/// once every reader that might still hold the old slot number has left. Two
/// counters, indexed by the parity of a phase number, are all it takes; a reader
/// costs two atomic increments.
public final class ReclamationGate: @unchecked Sendable {
    // [phase, readers(even phases), readers(odd phases)], each on its own cache line.
    private let words: UnsafeMutablePointer<UInt64>
    private static let stride = 8  // 64 bytes between words

    public init() {
        words = UnsafeMutablePointer<UInt64>.allocate(capacity: 3 * Self.stride)
        words.initialize(repeating: 0, count: 3 * Self.stride)
    }

    deinit { words.deallocate() }

    private var phase: UnsafeMutablePointer<UInt64> { words }
    private func counter(_ parity: UInt64) -> UnsafeMutablePointer<UInt64> { words + Self.stride * Int(1 + parity) }

    /// Marks the start of a read-side section; pass the token to `exit`.
    @inline(__always)
    public func enter() -> UInt64 {
        while true {
            let current = sx_load_acquire_u64(phase)
            _ = sx_fetch_add_u64(counter(current & 1), 1)
            // Counted only if the phase did not move in between; otherwise the
            // synchronizer may already have checked this counter.
            if sx_load_acquire_u64(phase) == current { return current & 1 }
            _ = sx_fetch_add_u64(counter(current & 1), UInt64.max)  // -1
        }
    }

    @inline(__always)
    public func exit(_ token: UInt64) {
        _ = sx_fetch_add_u64(counter(token), UInt64.max)
    }

    @inline(__always)
    public func read<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        let token = enter()
        defer { exit(token) }
        return try body()
    }

    /// Waits until every read-side section that began before this call has ended.
    /// Callers must serialise their calls (the storage writer does).
    public func synchronize() {
        let old = sx_load_acquire_u64(phase)
        sx_store_release_u64(phase, old &+ 1)
        var spins = 0
        while sx_load_acquire_u64(counter(old & 1)) != 0 {
            spins += 1
            if spins < 1000 { sx_cpu_relax() } else { usleep(50) }
        }
    }
}
