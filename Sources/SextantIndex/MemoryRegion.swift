#if canImport(Glibc)
import Glibc
#endif

/// A fixed span of virtual memory that the index lays its flat arrays in.
///
/// The whole span is reserved up front (MAP_NORESERVE: address space, not RAM),
/// so an array grows by touching more of it and its base address never moves.
/// That is what lets searches run while inserts grow the arrays: no remap, no
/// pointer fix-ups, nothing for a reader to race with. Pages cost memory only
/// once written. The storage layer makes regions whose first bytes are a
/// checkpoint file mapped copy-on-write; the index cannot tell the difference.
public final class MemoryRegion: @unchecked Sendable {
    public let base: UnsafeMutableRawPointer
    public let reservedBytes: Int
    private let release: @Sendable (UnsafeMutableRawPointer, Int) -> Void

    public init(
        base: UnsafeMutableRawPointer, reservedBytes: Int,
        release: @escaping @Sendable (UnsafeMutableRawPointer, Int) -> Void
    ) {
        self.base = base
        self.reservedBytes = reservedBytes
        self.release = release
    }

    deinit { release(base, reservedBytes) }

    /// Reserves `reservedBytes` of zero-filled anonymous memory.
    public static func anonymous(reservedBytes: Int) throws(IndexError) -> MemoryRegion {
        let size = max(MemoryRegion.pageRounded(reservedBytes), Int(getpagesize()))
        let pointer = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let pointer, pointer != MAP_FAILED else {
            throw .outOfMemory("cannot reserve \(size) bytes of address space (errno \(errno))")
        }
        return MemoryRegion(base: pointer, reservedBytes: size) { base, bytes in _ = munmap(base, bytes) }
    }

    public static func pageRounded(_ bytes: Int) -> Int {
        let page = Int(getpagesize())
        return (bytes + page - 1) / page * page
    }

    @inlinable
    public func pointer<T>(at offsetBytes: Int, as type: T.Type) -> UnsafeMutablePointer<T> {
        (base + offsetBytes).assumingMemoryBound(to: T.self)
    }
}
