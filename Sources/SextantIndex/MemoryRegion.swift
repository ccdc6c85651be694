import CSextantKernels

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
///
/// Two page bitmaps ride along, both lazily touched (a bit per 4 KiB page):
/// the pages written through the region (a checkpoint copies the rest straight
/// from the previous file, never through the mapping), and the pages already
/// advised for reading (so a warm query issues no system call at all).
public final class MemoryRegion: @unchecked Sendable {
    public let base: UnsafeMutableRawPointer
    public let reservedBytes: Int
    private let release: @Sendable (UnsafeMutableRawPointer, Int) -> Void
    private let pageBytes = Int(getpagesize())
    private let pageCount: Int
    private let written: UnsafeMutablePointer<UInt8>
    private let advised: UnsafeMutablePointer<UInt8>

    public init(
        base: UnsafeMutableRawPointer, reservedBytes: Int,
        release: @escaping @Sendable (UnsafeMutableRawPointer, Int) -> Void
    ) {
        self.base = base
        self.reservedBytes = reservedBytes
        self.release = release
        pageCount = (reservedBytes + pageBytes - 1) / pageBytes
        let bitmapBytes = max((pageCount + 7) / 8, 1)
        written = Self.zeroed(bitmapBytes)
        advised = Self.zeroed(bitmapBytes)
    }

    deinit {
        release(base, reservedBytes)
        let bitmapBytes = max((pageCount + 7) / 8, 1)
        munmap(written, MemoryRegion.pageRounded(bitmapBytes))
        munmap(advised, MemoryRegion.pageRounded(bitmapBytes))
    }

    /// Zero pages of address space; memory only once a bit is set.
    private static func zeroed(_ bytes: Int) -> UnsafeMutablePointer<UInt8> {
        let size = pageRounded(bytes)
        let pointer = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let pointer, pointer != MAP_FAILED else { preconditionFailure("cannot reserve \(size) bytes for a page bitmap") }
        return pointer.assumingMemoryBound(to: UInt8.self)
    }

    /// Reserves `reservedBytes` of zero-filled anonymous memory, followed by one
    /// inaccessible guard page: a write past the end faults instead of landing
    /// in a neighbouring region, and the kernel keeps each region its own
    /// mapping (so /proc/self/smaps accounts for it alone).
    public static func anonymous(reservedBytes: Int) throws(IndexError) -> MemoryRegion {
        let page = Int(getpagesize())
        let size = max(MemoryRegion.pageRounded(reservedBytes), page)
        let pointer = mmap(nil, size + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let pointer, pointer != MAP_FAILED else {
            throw .outOfMemory("cannot reserve \(size) bytes of address space (errno \(errno))")
        }
        guard mprotect(pointer + size, page, PROT_NONE) == 0 else {
            munmap(pointer, size + page)
            throw .outOfMemory("cannot protect the guard page of a region (errno \(errno))")
        }
        // 2 MiB pages where the kernel offers them: a walk's random reads over
        // hundreds of megabytes of codes and lists otherwise miss the TLB on
        // nearly every node.
        if size >= hugePageThresholdBytes { _ = madvise(pointer, size, 14 /* MADV_HUGEPAGE */) }
        return MemoryRegion(base: pointer, reservedBytes: size) { base, bytes in _ = munmap(base, bytes + Int(getpagesize())) }
    }

    /// Regions from this size on ask for transparent huge pages.
    public static let hugePageThresholdBytes = 4 << 20

    public static func pageRounded(_ bytes: Int) -> Int {
        let page = Int(getpagesize())
        return (bytes + page - 1) / page * page
    }

    @inlinable
    public func pointer<T>(at offsetBytes: Int, as type: T.Type) -> UnsafeMutablePointer<T> {
        (base + offsetBytes).assumingMemoryBound(to: T.self)
    }

    // MARK: - Written pages

    /// Records that bytes [offset, offset + length) were written through the region.
    public func noteWritten(_ offset: Int, _ length: Int) {
        guard length > 0 else { return }
        precondition(offset >= 0 && offset + length <= reservedBytes, "write outside the region")
        for page in (offset / pageBytes)...((offset + length - 1) / pageBytes) {
            _ = sx_fetch_or_u8(written + page / 8, UInt8(1 << (page % 8)))
        }
    }

    /// The pages written since the region was made, as byte ranges below
    /// `limit`, merged where they touch: what a checkpoint must copy from memory.
    public func writtenRanges(below limit: Int) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        let pages = min(pageCount, (limit + pageBytes - 1) / pageBytes)
        var page = 0
        while page < pages {
            guard sx_load_acquire_u8(written + page / 8) & UInt8(1 << (page % 8)) != 0 else {
                page += 1
                continue
            }
            let start = page
            while page < pages && sx_load_acquire_u8(written + page / 8) & UInt8(1 << (page % 8)) != 0 { page += 1 }
            ranges.append((start * pageBytes)..<min(page * pageBytes, limit))
        }
        return ranges
    }

    // MARK: - Read advice

    /// Asks the kernel to start reading the pages of [offset, offset + length)
    /// not advised before (MADV_WILLNEED returns at once; the reads proceed
    /// together), so a batch of scattered reads waits for the slowest page, not
    /// the sum of them. Pages advised once are taken to stay resident.
    public func adviseWillNeed(_ offset: Int, _ length: Int) {
        guard length > 0 else { return }
        for page in (offset / pageBytes)...((offset + length - 1) / pageBytes) where page < pageCount {
            let bit = UInt8(1 << (page % 8))
            guard sx_load_acquire_u8(advised + page / 8) & bit == 0 else { continue }
            _ = sx_fetch_or_u8(advised + page / 8, bit)
            _ = madvise(base + page * pageBytes, pageBytes, MADV_WILLNEED)
        }
    }

    /// Forgets what was advised and asks the kernel to drop the region's clean
    /// file pages (MADV_PAGEOUT): a cold benchmark pass reads from disk again.
    public func evictAndForgetAdvice(upTo limit: Int) {
        let bitmapBytes = max((pageCount + 7) / 8, 1)
        advised.update(repeating: 0, count: bitmapBytes)
        let length = MemoryRegion.pageRounded(min(limit, reservedBytes))
        if length > 0 { _ = madvise(base, length, 21 /* MADV_PAGEOUT */) }
    }
}
