import CSextantKernels
import SextantConcurrency
import SextantKernels
import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A FIFO lock for async code: waiting suspends the task instead of blocking a
/// thread, so writers queued behind a checkpoint never starve the thread pool
/// that readers share. Taken only through `withLock`, so no path can forget
/// to release it.
final class AsyncLock: Sendable {
    private struct State {
        var locked = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    private func lock() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let acquired = state.withLock { state -> Bool in
                if !state.locked {
                    state.locked = true
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if acquired { continuation.resume() }
        }
    }

    private func unlock() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            precondition(state.locked, "unlock of an unlocked AsyncLock")
            if state.waiters.isEmpty {
                state.locked = false
                return nil
            }
            return state.waiters.removeFirst()  // ownership passes straight to the next waiter
        }
        next?.resume()
    }

    func withLock<T>(_ body: () async throws -> T) async rethrows -> T {
        await lock()
        defer { unlock() }
        return try await body()
    }
}

/// pthread reader/writer lock, writer-preferring: index linking takes it shared,
/// reclamation and checkpoints exclusive, and a waiting checkpoint is not starved.
final class ReadWriteLock: @unchecked Sendable {
    private let handle = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)

    init() {
        var attributes = pthread_rwlockattr_t()
        pthread_rwlockattr_init(&attributes)
        pthread_rwlockattr_setkind_np(&attributes, Int32(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP))
        pthread_rwlock_init(handle, &attributes)
        pthread_rwlockattr_destroy(&attributes)
    }

    deinit {
        pthread_rwlock_destroy(handle)
        handle.deallocate()
    }

    func withShared<T>(_ body: () throws -> T) rethrows -> T {
        pthread_rwlock_rdlock(handle)
        defer { pthread_rwlock_unlock(handle) }
        return try body()
    }

    func withExclusive<T>(_ body: () throws -> T) rethrows -> T {
        pthread_rwlock_wrlock(handle)
        defer { pthread_rwlock_unlock(handle) }
        return try body()
    }

    /// Exclusive access taken only between readers, never queued for: a
    /// queued writer holds every new reader back until the scheduler runs it,
    /// which for a niced background writer under load took tens of
    /// milliseconds. For short bodies of background work that can wait.
    func withExclusiveBetweenReaders<T>(_ body: () throws -> T) rethrows -> T {
        while pthread_rwlock_trywrlock(handle) != 0 { usleep(20) }
        defer { pthread_rwlock_unlock(handle) }
        return try body()
    }
}

/// Runs blocking work (file writes, fsync, waiting on the indexer) off the
/// cooperative thread pool, at `priority` when given: a checkpoint's copying
/// and CRC at query priority held a core for whole scheduler ticks.
enum Blocking {
    static let queue = DispatchQueue(label: "sextant.storage.blocking", attributes: .concurrent)

    static func run<T: Sendable>(at priority: BackgroundPriority? = nil, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result { try priority.map { try $0.whileApplied(body) } ?? body() })
            }
        }
    }
}
