import CSextantKernels
import Synchronization

/// A binary heap of (distance, slot) pairs in two flat arrays. `isMax` picks
/// the order: the result set is a max-heap (worst on top, to evict), the
/// candidate queue a min-heap (best on top, to expand).
struct DistanceHeap {
    private(set) var distances: UnsafeMutablePointer<Float>
    private(set) var slots: UnsafeMutablePointer<UInt32>
    private(set) var count = 0
    private var capacity: Int
    private let isMax: Bool

    init(capacity: Int, isMax: Bool) {
        self.capacity = max(capacity, 16)
        self.isMax = isMax
        distances = .allocate(capacity: self.capacity)
        slots = .allocate(capacity: self.capacity)
    }

    func deallocate() {
        distances.deallocate()
        slots.deallocate()
    }

    @inline(__always) var isEmpty: Bool { count == 0 }
    @inline(__always) var topDistance: Float { distances[0] }
    @inline(__always) var topSlot: UInt32 { slots[0] }

    @inline(__always) mutating func removeAll() { count = 0 }

    @inline(__always)
    private func before(_ a: Float, _ b: Float) -> Bool { isMax ? a > b : a < b }

    mutating func push(_ distance: Float, _ slot: UInt32) {
        if count == capacity { grow() }
        var index = count
        count += 1
        while index > 0 {
            let parent = (index - 1) >> 1
            guard before(distance, distances[parent]) else { break }
            distances[index] = distances[parent]
            slots[index] = slots[parent]
            index = parent
        }
        distances[index] = distance
        slots[index] = slot
    }

    mutating func pop() {
        assert(count > 0, "pop from an empty heap")
        count -= 1
        guard count > 0 else { return }
        let distance = distances[count]
        let slot = slots[count]
        var index = 0
        while true {
            let left = 2 * index + 1
            if left >= count { break }
            let right = left + 1
            let child = right < count && before(distances[right], distances[left]) ? right : left
            guard before(distances[child], distance) else { break }
            distances[index] = distances[child]
            slots[index] = slots[child]
            index = child
        }
        distances[index] = distance
        slots[index] = slot
    }

    private mutating func grow() {
        let newCapacity = capacity * 2
        let newDistances = UnsafeMutablePointer<Float>.allocate(capacity: newCapacity)
        let newSlots = UnsafeMutablePointer<UInt32>.allocate(capacity: newCapacity)
        newDistances.update(from: distances, count: count)
        newSlots.update(from: slots, count: count)
        distances.deallocate()
        slots.deallocate()
        distances = newDistances
        slots = newSlots
        capacity = newCapacity
    }

    /// Drains into an array sorted best first (ascending distance). Max-heap only.
    mutating func drainAscending() -> [SearchHit] {
        assert(isMax)
        var hits = [SearchHit](repeating: SearchHit(slot: 0, distance: 0), count: count)
        var index = count - 1
        while count > 0 {
            hits[index] = SearchHit(slot: topSlot, distance: topDistance)
            pop()
            index -= 1
        }
        return hits
    }
}

/// Everything one search or insert needs, allocated once and reused (USearch's
/// per-thread context): heaps, the visited set, neighbour and distance buffers.
/// The visited set is an array of epoch tags, bumped per search instead of
/// cleared, so starting a search costs O(1).
final class SearchContext: @unchecked Sendable {
    var candidates: DistanceHeap
    var results: DistanceHeap
    private(set) var visited: UnsafeMutablePointer<UInt16>
    private(set) var visitedCapacity: Int
    private(set) var epoch: UInt16 = 0
    let neighbors: UnsafeMutablePointer<UInt32>
    let unvisited: UnsafeMutablePointer<UInt32>
    let distances: UnsafeMutablePointer<Float>
    let query: UnsafeMutablePointer<Float>
    let scratch: UnsafeMutablePointer<Float>
    /// `query` and `scratch` prepared for a quantized walk (int8 bytes, sign code).
    let querySQ8: UnsafeMutablePointer<sx_sq8_query>
    let scratchSQ8: UnsafeMutablePointer<sx_sq8_query>
    let queryBits: UnsafeMutablePointer<UInt64>
    let scratchBits: UnsafeMutablePointer<UInt64>
    let batchCapacity: Int

    init(paddedDimensions: Int, maxNeighbors: Int, slotCapacityHint: Int) {
        candidates = DistanceHeap(capacity: 256, isMax: false)
        results = DistanceHeap(capacity: 256, isMax: true)
        visitedCapacity = max(slotCapacityHint, 1024)
        visited = .allocate(capacity: visitedCapacity)
        visited.initialize(repeating: 0, count: visitedCapacity)
        batchCapacity = max(maxNeighbors * 2 + 2, 1024)
        neighbors = .allocate(capacity: batchCapacity)
        unvisited = .allocate(capacity: batchCapacity)
        distances = .allocate(capacity: batchCapacity)
        query = .allocate(capacity: paddedDimensions)
        scratch = .allocate(capacity: paddedDimensions)
        querySQ8 = .allocate(capacity: 1)
        scratchSQ8 = .allocate(capacity: 1)
        queryBits = .allocate(capacity: Self.maximumCodeWords)
        scratchBits = .allocate(capacity: Self.maximumCodeWords)
    }

    /// Sign-code words of the widest vector (4,096 dimensions).
    static let maximumCodeWords = 64

    deinit {
        candidates.deallocate()
        results.deallocate()
        visited.deallocate()
        neighbors.deallocate()
        unvisited.deallocate()
        distances.deallocate()
        query.deallocate()
        scratch.deallocate()
        querySQ8.deallocate()
        scratchSQ8.deallocate()
        queryBits.deallocate()
        scratchBits.deallocate()
    }

    /// Starts a new visited generation covering slots below `slotCount`.
    func beginVisit(slotCount: Int) {
        if slotCount > visitedCapacity {
            visited.deallocate()
            visitedCapacity = max(slotCount, visitedCapacity * 2)
            visited = .allocate(capacity: visitedCapacity)
            visited.initialize(repeating: 0, count: visitedCapacity)
            epoch = 0
        }
        if epoch == UInt16.max {
            visited.update(repeating: 0, count: visitedCapacity)
            epoch = 0
        }
        epoch &+= 1
        candidates.removeAll()
        results.removeAll()
    }

    /// Marks `slot` visited; returns false if it already was in this generation.
    @inline(__always)
    func visit(_ slot: UInt32) -> Bool {
        let index = Int(slot)
        if index >= visitedCapacity { return false }  // slot newer than this search: skip it
        if visited[index] == epoch { return false }
        visited[index] = epoch
        return true
    }
}

/// A small pool so concurrent searches each get a context without allocating.
final class SearchContextPool: Sendable {
    private let contexts = Mutex<[SearchContext]>([])
    private let paddedDimensions: Int
    private let maxNeighbors: Int

    init(paddedDimensions: Int, maxNeighbors: Int) {
        self.paddedDimensions = paddedDimensions
        self.maxNeighbors = maxNeighbors
    }

    func withContext<T, E: Error>(slotCount: Int, _ body: (SearchContext) throws(E) -> T) throws(E) -> T {
        let context =
            contexts.withLock { $0.popLast() }
            ?? SearchContext(paddedDimensions: paddedDimensions, maxNeighbors: maxNeighbors, slotCapacityHint: slotCount)
        defer {
            contexts.withLock { pool in
                if pool.count < 64 { pool.append(context) }
            }
        }
        return try body(context)
    }
}
