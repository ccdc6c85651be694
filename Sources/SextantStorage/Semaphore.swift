#if canImport(Glibc)
import Glibc
#endif

/// A counting semaphore on a POSIX semaphore (for the synchronous backend's thread).
final class Semaphore: @unchecked Sendable {
    private let handle = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
    init(value: UInt32 = 0) { sem_init(handle, 0, value) }
    deinit {
        sem_destroy(handle)
        handle.deallocate()
    }
    func signal() { sem_post(handle) }
    func wait() { while sem_wait(handle) != 0 && errno == EINTR {} }
}

