import CSextantKernels
import SextantConcurrency
import SextantKernels
import Synchronization

/// Records written but not yet linked into the graph, as a ring of slot ids.
/// The writer appends (under the collection's mutation lock); indexer threads
/// claim runs of entries and mark them done; readers scan [head, tail) with
/// two atomic loads and no lock, so a query sees every acknowledged record
/// even before it is indexed. Bounded: writers wait for room.
final class UnindexedTail: @unchecked Sendable {
    /// Entries writers may leave unindexed before they wait (the backpressure bound).
    let limit: Int
    /// The ring's physical size: `limit` plus one largest batch, so a batch
    /// admitted at the limit always fits (a batch larger than a small limit
    /// included); at open, plus the records of the WAL it replays.
    let capacity: Int
    private let slots: UnsafeMutablePointer<UInt32>
    private let done: UnsafeMutablePointer<Bool>
    /// [head, tail] as monotonically increasing positions, one cache line each.
    private let positions: UnsafeMutablePointer<UInt64>
    private struct Claims {
        var nextToClaim: UInt64 = 0
        var spaceWaiters: [(needed: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }
    private let claims = Mutex(Claims())
    /// Each entry's sign code (`SignCodes`), `codeWords` words, allocated when
    /// the collection's dimension is known and before the first publish; read
    /// in place by queries (see `nearestByCode`). The address sits in an atomic
    /// so that a reader never races the one-time allocation.
    private let codesAddress = Atomic<UInt>(0)
    private(set) var codeWords = 0

    /// At most this many entries of room for a replayed WAL (a collection of
    /// tiny vectors fits millions of records in one WAL): past it replay links.
    static let maximumReplayRoom = 1 << 20

    /// The power of two at or above `requested`, within 64...1<<20.
    static func roundedCapacity(_ requested: Int) -> Int {
        var capacity = 64
        while capacity < min(max(requested, 64), 1 << 20) { capacity <<= 1 }
        return capacity
    }

    init(limit requested: Int, underReads: Int = StorageLimits.unindexedTailCapacity,
         largestBatch: Int = StorageLimits.maximumBatchRecords) {
        limit = Self.roundedCapacity(requested)
        limitUnderReads = min(limit, Self.roundedCapacity(underReads))
        var capacity = 64
        while capacity < limit + largestBatch { capacity <<= 1 }
        precondition(capacity >= limit + largestBatch && capacity & (capacity - 1) == 0, "tail capacity must be a power of two")
        self.capacity = capacity
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: 0, count: capacity)
        done = .allocate(capacity: capacity)
        done.initialize(repeating: false, count: capacity)
        positions = .allocate(capacity: 16)
        positions.initialize(repeating: 0, count: 16)
    }

    deinit {
        slots.deallocate()
        done.deallocate()
        positions.deallocate()
        if let codes { codes.deallocate() }
    }

    private var codes: UnsafeMutablePointer<UInt64>? {
        UnsafeMutablePointer(bitPattern: codesAddress.load(ordering: .acquiring))
    }

    /// Sizes the code table for a dimension; called once, before anything is
    /// published (collection open, or the first write that decides the dimension).
    func prepareCodes(dimensions: Int) {
        precondition(count == 0 || codes != nil, "codes are prepared before the first publish")
        guard codes == nil, dimensions > 0 else { return }
        let words = SignCodes.words(dimensions: dimensions)
        let tableWords = SignCodes.Blocks.words(entries: capacity, dimensions: dimensions)
        // Left uninitialised: an entry's words are written before it is published
        // and only published entries count, so pages are touched as the ring is
        // used (an idle collection costs address space, not memory).
        let table = UnsafeMutablePointer<UInt64>.allocate(capacity: tableWords)
        codeWords = words
        codesAddress.store(UInt(bitPattern: table), ordering: .releasing)
    }

    private var headPointer: UnsafeMutablePointer<UInt64> { positions }
    private var tailPointer: UnsafeMutablePointer<UInt64> { positions + 8 }
    var head: UInt64 { sx_load_acquire_u64(headPointer) }
    var tail: UInt64 { sx_load_acquire_u64(tailPointer) }
    var count: Int { Int(tail - head) }
    var free: Int { capacity - count }

    /// The bound that applies while readers are active (`noteReader`).
    let limitUnderReads: Int
    /// A smaller bound under reads: this collection gives queries precedence over writes.
    var readsFirst: Bool { limitUnderReads < limit }
    /// CLOCK_MONOTONIC_COARSE milliseconds of the last query; 0 before the first.
    private let lastReaderMilliseconds = Atomic<UInt64>(0)

    /// Called by every query. Stores only when the coarse clock moved, so that
    /// readers on several cores do not bounce one cache line per query.
    func noteReader() {
        let now = MonotonicClock.coarseMilliseconds()
        if lastReaderMilliseconds.load(ordering: .relaxed) != now {
            lastReaderMilliseconds.store(now, ordering: .relaxed)
        }
    }

    var hasRecentReaders: Bool {
        let last = lastReaderMilliseconds.load(ordering: .relaxed)
        return last != 0 && MonotonicClock.coarseMilliseconds() &- last < UInt64(StorageLimits.readerActivityWindowMilliseconds)
    }

    /// The limit in force: the small one while a query ran within the window.
    var effectiveLimit: Int { hasRecentReaders ? limitUnderReads : limit }

    /// Room for `needed` more: under the limit in force, or an empty tail (a batch
    /// larger than a small limit goes alone; the physical ring still holds it).
    func hasRoom(_ needed: Int) -> Bool { count == 0 || count + needed <= effectiveLimit }


    /// Waits until `needed` more entries fit (writers call this before they apply).
    /// A waiter admitted under the small limit is woken by the indexer's progress;
    /// the indexer drains the whole tail, so an empty tail always lets it in.
    func waitForRoom(_ needed: Int) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = claims.withLock { state -> Bool in
                if hasRoom(needed) { return true }
                state.spaceWaiters.append((needed, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }

    /// Appends slots; the caller checked room under the same serialisation.
    /// Returns false if there was not enough room (nothing appended).
    /// `code` writes a slot's sign code (`codeWords` words) into the table.
    func publish(_ newSlots: [UInt32], code: (UInt32, UnsafeMutablePointer<UInt64>) -> Void) -> Bool {
        guard !newSlots.isEmpty else { return true }
        guard newSlots.count <= free else { return false }
        guard let codes else { preconditionFailure("publish before prepareCodes") }
        let start = tail
        let scratch = UnsafeMutablePointer<UInt64>.allocate(capacity: codeWords)
        defer { scratch.deallocate() }
        for (offset, slot) in newSlots.enumerated() {
            let position = Int((start + UInt64(offset)) & UInt64(capacity - 1))
            slots[position] = slot
            done[position] = false
            code(slot, scratch)
            SignCodes.Blocks.store(scratch, entry: position, words: codeWords, in: codes)
        }
        sx_store_release_u64(tailPointer, start + UInt64(newSlots.count))
        return true
    }

    /// Hands out up to `maximum` unclaimed entries as (position, slot).
    func claim(_ maximum: Int) -> [(position: UInt64, slot: UInt32)] {
        claims.withLock { state in
            let end = min(tail, state.nextToClaim + UInt64(maximum))
            guard end > state.nextToClaim else { return [] }
            let claimed = (state.nextToClaim..<end).map { ($0, slots[Int($0 & UInt64(capacity - 1))]) }
            state.nextToClaim = end
            return claimed
        }
    }

    /// Marks entries finished and advances the head over the finished prefix.
    func complete(_ finished: [UInt64]) {
        let wake = claims.withLock { state -> [CheckedContinuation<Void, Never>] in
            for position in finished { done[Int(position & UInt64(capacity - 1))] = true }
            var newHead = head
            while newHead < state.nextToClaim && done[Int(newHead & UInt64(capacity - 1))] { newHead += 1 }
            sx_store_release_u64(headPointer, newHead)
            var ready: [CheckedContinuation<Void, Never>] = []
            state.spaceWaiters.removeAll { waiter in
                guard hasRoom(waiter.needed) else { return false }
                ready.append(waiter.continuation)
                return true
            }
            return ready
        }
        for continuation in wake { continuation.resume() }
    }

    /// The slots a reader must scan exactly. Lock-free; a slot that gets indexed
    /// meanwhile may also come back from the graph (callers de-duplicate).
    func snapshot() -> [UInt32] {
        let start = head
        let end = tail
        guard end > start else { return [] }
        return (start..<end).map { slots[Int($0 & UInt64(capacity - 1))] }
    }

    /// The slots of at least `keep` tail entries whose sign codes are nearest to
    /// `query` (every entry nearer than the farthest one returned is among
    /// them), ranked in place without copying the tail; nil when the tail holds
    /// fewer than `minimumCount` entries (an exact scan of all is then cheap).
    ///
    /// Call it before searching the graph. An entry can be recycled while this
    /// reads it only after the indexer linked its record, so a record missed
    /// here is in the graph by the time the graph search starts; a recycled entry
    /// read half-updated yields some other valid slot, which exact scoring and
    /// the liveness check after it treat like any other candidate.
    func nearestByCode(_ query: UnsafePointer<UInt64>, keep: Int, minimumCount: Int) -> [UInt32]? {
        // Head and tail are two loads: in between, the indexer and writers may
        // both move. A head past the tail read means an emptied tail; a tail more
        // than a ring ahead means the oldest entries were recycled, hence linked,
        // and the graph search that follows finds them.
        let end = tail
        let headNow = head
        guard headNow < end else { return nil }
        let ring = UInt64(capacity)
        let start = end > ring ? max(headNow, end - ring) : headNow
        let total = Int(end - start)
        guard total >= max(minimumCount, keep + 1), let codes else { return nil }
        assert(total <= capacity, "never more than one ring")
        let first = Int(start & UInt64(capacity - 1))
        let leading = min(total, capacity - first)
        var entries = SignCodes.Blocks.nearest(in: codes, words: codeWords, query: query, first: first, count: leading, keep: keep)
        if leading < total {  // the range wraps: the best of each part, scored exactly later
            entries += SignCodes.Blocks.nearest(in: codes, words: codeWords, query: query, first: 0, count: total - leading, keep: keep)
        }
        return entries.map { slots[Int($0)] }
    }

    var hasUnclaimed: Bool { claims.withLock { $0.nextToClaim < tail } }
}

