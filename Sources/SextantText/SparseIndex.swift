#if canImport(Glibc)
import Glibc
#endif

/// An inverted index over sparse vectors (a learned model's terms, or the
/// saturated term frequencies chromadb-client's `chroma_bm25` sends) with
/// exact top-k by dot product, in memory.
///
/// Laid out as `BM25Index` is: per dimension a list of (slot, value) in two
/// flat arrays sorted by slot, and per slot the lists it is in, so a
/// replacement or delete marks just those lists for the next `compact`.
///
/// Top-k is exact, by MaxScore, for the reasons `BM25Index` gives: queries
/// are short (a BM25 query is a few terms; a SPLADE query tens) and lists are
/// long, so skipping whole lists once the k-th score passes their bound does
/// most of the work with the least state. A term's bound is the most its list
/// can add to a score, `max(0, w·max value)` (`w·min value` for a negative
/// query weight), so negative values stay exact too: they only lower a score.
public struct SparseIndex: Sendable {
    struct Postings: Sendable {
        var slots: [UInt32] = []
        var values: [Float] = []
        /// Live documents holding the dimension (n_t in the IDF).
        var documentCount = 0
        var maximumValue: Float = -.infinity
        var minimumValue: Float = .infinity
        var needsCompaction = false
    }

    private var listIDs: [UInt32: UInt32] = [:]
    private var dimensions: [UInt32] = []
    private var postings: [Postings] = []
    /// Per slot: the lists (by id, sorted) its vector is in.
    private var listsOfSlot: [[UInt32]] = []
    private var dirtyLists: [UInt32] = []
    public private(set) var documentCount = 0

    public init() {}

    /// Non-zero entries held, over every document.
    public var entryCount: Int { postings.reduce(0) { $0 + $1.documentCount } }

    public var memoryBytes: Int {
        postings.reduce(0) { $0 + $1.slots.count * 8 + 64 } + listIDs.count * 16
            + listsOfSlot.reduce(0) { $0 + $1.count * 4 + 24 }
    }

    /// Documents holding `dimension` (n_t).
    public func documentFrequency(_ dimension: UInt32) -> Int {
        listIDs[dimension].map { postings[Int($0)].documentCount } ?? 0
    }

    /// Indexes (or replaces) the vector at `slot`. `indices` strictly
    /// ascending and `values` finite, as `SparseVector.validate` checks.
    public mutating func set(slot: UInt32, indices: [UInt32], values: [Float]) {
        precondition(indices.count == values.count, "one value per index")
        remove(slot: slot)
        let index = Int(slot)
        if listsOfSlot.count <= index {
            listsOfSlot.append(contentsOf: repeatElement([], count: index + 1 - listsOfSlot.count))
        }
        guard !indices.isEmpty else { return }
        var lists: [UInt32] = []
        lists.reserveCapacity(indices.count)
        for (dimension, value) in zip(indices, values) {
            let id: UInt32
            if let known = listIDs[dimension] {
                id = known
            } else {
                id = UInt32(postings.count)
                listIDs[dimension] = id
                dimensions.append(dimension)
                postings.append(Postings())
            }
            let list = Int(id)
            if let last = postings[list].slots.last, last >= slot, !postings[list].needsCompaction {
                postings[list].needsCompaction = true
                dirtyLists.append(id)
            }
            postings[list].slots.append(slot)
            postings[list].values.append(value)
            postings[list].documentCount += 1
            postings[list].maximumValue = max(postings[list].maximumValue, value)
            postings[list].minimumValue = min(postings[list].minimumValue, value)
            lists.append(id)
        }
        lists.sort()
        listsOfSlot[index] = lists
        documentCount += 1
    }

    /// Forgets the vector at `slot` (its postings are dropped by the next `compact`).
    public mutating func remove(slot: UInt32) {
        let index = Int(slot)
        guard index < listsOfSlot.count, !listsOfSlot[index].isEmpty else { return }
        for id in listsOfSlot[index] {
            postings[Int(id)].documentCount -= 1
            if !postings[Int(id)].needsCompaction {
                postings[Int(id)].needsCompaction = true
                dirtyLists.append(id)
            }
        }
        listsOfSlot[index] = []
        documentCount -= 1
        assert(documentCount >= 0, "counts stay non-negative")
    }

    public var needsCompaction: Bool { !dirtyLists.isEmpty }

    /// Sorts appended postings, drops removed ones and tightens the value bounds.
    public mutating func compact() {
        for id in dirtyLists {
            let list = Int(id)
            let slots = postings[list].slots
            let values = postings[list].values
            var keptSlots: [UInt32] = []
            var keptValues: [Float] = []
            keptSlots.reserveCapacity(postings[list].documentCount)
            keptValues.reserveCapacity(postings[list].documentCount)
            var maximum = -Float.infinity
            var minimum = Float.infinity
            forEachNewestEntry(slots) { slot, position in
                guard holds(slot: slot, list: id) else { return }
                let value = values[position]
                keptSlots.append(slot)
                keptValues.append(value)
                maximum = max(maximum, value)
                minimum = min(minimum, value)
            }
            postings[list].slots = keptSlots
            postings[list].values = keptValues
            postings[list].maximumValue = maximum
            postings[list].minimumValue = minimum
            postings[list].needsCompaction = false
            assert(keptSlots.count == postings[list].documentCount, "one posting per live document holding the dimension")
        }
        dirtyLists.removeAll(keepingCapacity: true)
    }

    private func holds(slot: UInt32, list: UInt32) -> Bool {
        let index = Int(slot)
        guard index < listsOfSlot.count else { return false }
        let lists = listsOfSlot[index]
        var low = 0
        var high = lists.count
        while low < high {
            let middle = (low + high) / 2
            if lists[middle] < list { low = middle + 1 } else { high = middle }
        }
        return low < lists.count && lists[low] == list
    }

    /// The inverse document frequency Chroma applies to a BM25 key's query
    /// values: `ln(1 + (n − n_t + 0.5)/(n_t + 0.5))`, n_t clamped to n.
    public static func inverseDocumentFrequency(documents n: Int, holding nt: Int) -> Double {
        let n = Double(max(n, 0))
        let nt = min(Double(nt), n)
        return log(1 + (n - nt + 0.5) / (nt + 0.5))
    }

    /// The exact top `k` documents by dot product with the query, best first,
    /// ties to the smaller slot; only documents sharing a dimension with the
    /// query are candidates. With `idfDocuments` (the collection's live
    /// records) each query value is first scaled by its dimension's IDF.
    /// `accept` restricts the documents (a filter). Compacted index only:
    /// readers run it at once while one writer waits.
    public func searchCompacted(indices: [UInt32], values: [Float], k: Int, idfDocuments: Int? = nil,
                                accept: ((UInt32) -> Bool)? = nil) -> [BM25Index.Hit] {
        precondition(dirtyLists.isEmpty, "compact after writing, before searching")
        precondition(indices.count == values.count, "one value per index")
        guard k > 0, documentCount > 0 else { return [] }
        struct Term {
            var list: Int
            var count: Int
            var weight: Double
            var bound: Double
            var cursor = 0
            var current: UInt32
        }
        var terms: [Term] = []
        var seen = Set<UInt32>()
        for (dimension, value) in zip(indices, values) where seen.insert(dimension).inserted {
            guard let id = listIDs[dimension] else { continue }
            let list = postings[Int(id)]
            guard list.documentCount > 0 else { continue }
            var weight = Double(value)
            if let idfDocuments { weight *= Self.inverseDocumentFrequency(documents: idfDocuments, holding: list.documentCount) }
            let extreme = Double(weight >= 0 ? list.maximumValue : list.minimumValue)
            terms.append(Term(list: Int(id), count: list.slots.count, weight: weight, bound: max(0, weight * extreme),
                              current: list.slots.first ?? UInt32.max))
        }
        guard !terms.isEmpty else { return [] }
        terms.sort { $0.bound < $1.bound }
        var prefixBound = [Double](repeating: 0, count: terms.count + 1)
        for index in terms.indices { prefixBound[index + 1] = prefixBound[index] + terms[index].bound }

        var heap = TopK(k: k, floor: -.infinity)
        var essentialFrom = 0
        while true {
            var candidate = UInt32.max
            for index in essentialFrom..<terms.count { candidate = min(candidate, terms[index].current) }
            if candidate == UInt32.max { break }
            let accepted = accept?(candidate) ?? true
            var total = 0.0
            for index in essentialFrom..<terms.count where terms[index].current == candidate {
                let list = terms[index].list
                let cursor = terms[index].cursor
                if accepted { total += terms[index].weight * Double(postings[list].values[cursor]) }
                terms[index].cursor = cursor + 1
                terms[index].current = cursor + 1 < terms[index].count ? postings[list].slots[cursor + 1] : UInt32.max
            }
            guard accepted else { continue }
            var index = essentialFrom - 1
            while index >= 0, total + prefixBound[index + 1] >= heap.threshold {
                let list = terms[index].list
                let low = gallop(postings[list].slots, from: terms[index].cursor, to: candidate)
                terms[index].cursor = low
                terms[index].current = low < terms[index].count ? postings[list].slots[low] : UInt32.max
                if terms[index].current == candidate { total += terms[index].weight * Double(postings[list].values[low]) }
                index -= 1
            }
            if heap.isFull, total <= heap.threshold { continue }
            if heap.offer(BM25Index.Hit(slot: candidate, score: total)) {
                while essentialFrom < terms.count, heap.isFull, prefixBound[essentialFrom + 1] < heap.threshold { essentialFrom += 1 }
            }
        }
        return heap.sorted()
    }
}

// MARK: - Stored form

extension SparseIndex {
    /// "SXSPRS" and a format version: another version is refused, never misread.
    static let magic: [UInt8] = Array("SXSPRS".utf8) + [0, 1]

    /// The index as bytes (little-endian): magic, the slot count, then per
    /// dimension its number and its sorted (slot, value) lists. Compacts first.
    public mutating func serialized() -> [UInt8] {
        compact()
        var out = Self.magic
        func put<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) } }
        put(UInt32(listsOfSlot.count))
        let live = postings.indices.filter { postings[$0].documentCount > 0 }
        put(UInt32(live.count))
        for id in live {
            put(dimensions[id])
            put(UInt32(postings[id].slots.count))
            for slot in postings[id].slots { put(slot) }
            for value in postings[id].values { put(value.bitPattern) }
        }
        return out
    }

    /// Reads `serialized()`'s bytes, checking every count, slot and value; damage is an error, not a crash.
    public init(serialized bytes: [UInt8]) throws(BM25Index.FormatError) {
        let parsed: Result<SparseIndex, BM25Index.FormatError> = bytes.withUnsafeBytes { raw in
            do throws(BM25Index.FormatError) { return .success(try Self.parse(raw)) } catch { return .failure(error) }
        }
        self = try parsed.get()
    }

    private static func parse(_ raw: UnsafeRawBufferPointer) throws(BM25Index.FormatError) -> SparseIndex {
        var offset = 0
        func take<T: FixedWidthInteger>(_: T.Type) throws(BM25Index.FormatError) -> T {
            let size = MemoryLayout<T>.size
            guard offset + size <= raw.count else { throw .corrupted("sparse index truncated at byte \(offset)") }
            let value = raw.loadUnaligned(fromByteOffset: offset, as: T.self)
            offset += size
            return T(littleEndian: value)
        }
        guard raw.count >= magic.count, raw.prefix(magic.count).elementsEqual(magic) else {
            throw .corrupted("not a sparse index of this format version")
        }
        offset = magic.count
        var index = SparseIndex()
        let slotCount = Int(try take(UInt32.self))
        let listCount = Int(try take(UInt32.self))
        guard listCount * 8 <= raw.count - offset, slotCount <= Int(UInt32.max) else { throw .corrupted("sparse list count past the end") }
        var highestSlot = -1
        for id in 0..<listCount {
            let dimension = try take(UInt32.self)
            let count = Int(try take(UInt32.self))
            guard count > 0, count * 8 <= raw.count - offset else { throw .corrupted("sparse dimension \(dimension) list past the end") }
            var list = Postings()
            list.slots.reserveCapacity(count)
            list.values.reserveCapacity(count)
            for _ in 0..<count { list.slots.append(try take(UInt32.self)) }
            for _ in 0..<count { list.values.append(Float(bitPattern: try take(UInt32.self))) }
            var previous = -1
            for (slot, value) in zip(list.slots, list.values) {
                guard Int(slot) < slotCount, Int(slot) > previous, value.isFinite else {
                    throw .corrupted("sparse dimension \(dimension) has an invalid posting")
                }
                previous = Int(slot)
                list.maximumValue = max(list.maximumValue, value)
                list.minimumValue = min(list.minimumValue, value)
            }
            highestSlot = max(highestSlot, previous)
            list.documentCount = count
            guard index.listIDs.updateValue(UInt32(id), forKey: dimension) == nil else {
                throw .corrupted("sparse dimension \(dimension) twice")
            }
            index.dimensions.append(dimension)
            index.postings.append(list)
        }
        guard offset == raw.count else { throw .corrupted("\(raw.count - offset) bytes after the last sparse list") }
        // Sized by the postings, not the stored count: damage cannot make it allocate.
        var listsOfSlot = [[UInt32]](repeating: [], count: highestSlot + 1)
        for (id, list) in index.postings.enumerated() {
            for slot in list.slots { listsOfSlot[Int(slot)].append(UInt32(id)) }
        }
        index.listsOfSlot = listsOfSlot
        index.documentCount = listsOfSlot.reduce(0) { $0 + ($1.isEmpty ? 0 : 1) }
        return index
    }
}
