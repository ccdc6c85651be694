#if canImport(Glibc)
import Glibc
#endif

/// An inverted index over documents' terms with exact BM25 top-k, in memory.
///
/// Documents are addressed by a 32-bit slot (the collection's record slot);
/// postings are per term, sorted by slot, each entry a (slot, term frequency)
/// pair in two flat arrays. Appending out of slot order, replacing or deleting
/// a document marks the lists it touches; the next search sorts and filters
/// just those (`compact`).
///
/// Top-k is exact, by MaxScore (Turtle & Flood): query terms are ordered by
/// their score upper bound; once the k-th best score passes the sum of the
/// smallest bounds, those terms can no longer make a document enter the top k
/// on their own, so documents are only drawn from the other ("essential")
/// terms' lists and the rest are looked up by binary search only for documents
/// that can still make it. Chosen over block-max WAND for its simpler state
/// and because BM25 queries here are short (a few terms) over 10^4-10^7
/// documents, where MaxScore's skipping already avoids most of the work.
public struct BM25Index: Sendable {
    /// BM25's saturation and length normalisation (Lucene's and Chroma's defaults).
    public struct Parameters: Sendable, Equatable {
        public var k1: Double
        public var b: Double
        public init(k1: Double = 1.2, b: Double = 0.75) {
            precondition(k1 >= 0 && (0...1).contains(b), "k1 ≥ 0 and b in 0...1")
            self.k1 = k1
            self.b = b
        }
    }

    public struct Hit: Sendable, Equatable {
        public var slot: UInt32
        public var score: Double
        public init(slot: UInt32, score: Double) {
            self.slot = slot
            self.score = score
        }
    }

    struct Postings: Sendable {
        var slots: [UInt32] = []
        var frequencies: [UInt32] = []
        /// Live documents holding the term (n_t in the IDF).
        var documentCount = 0
        var maximumFrequency: UInt32 = 0
        var minimumLength = UInt32.max
        /// Appended out of slot order, or holding a removed document's entry:
        /// `compact` sorts and filters it before the next search.
        var needsCompaction = false
    }

    public let parameters: Parameters
    private var termIDs: [String: UInt32] = [:]
    private var postings: [Postings] = []
    /// Per slot: its length in terms (0: no document) and the terms it holds,
    /// so a replacement or delete can update the counts.
    private var lengths: [UInt32] = []
    private var termsOfSlot: [[UInt32]] = []
    public private(set) var documentCount = 0
    private var totalLength = 0
    /// Terms whose lists `compact` must tidy before the next search.
    private var dirtyTerms: [UInt32] = []

    public init(parameters: Parameters = Parameters()) { self.parameters = parameters }

    public var termCount: Int { termIDs.count }

    /// Bytes held by postings and per-document arrays (term strings and
    /// dictionary overhead estimated at 48 bytes a term): the figure the
    /// benchmark reports beside tantivy's and FTS5's files.
    public var memoryBytes: Int {
        let postingBytes = postings.reduce(0) { $0 + $1.slots.count * 8 + 48 }
        let termBytes = termIDs.keys.reduce(0) { $0 + $1.utf8.count + 48 }
        let slotBytes = lengths.count * 4 + termsOfSlot.reduce(0) { $0 + $1.count * 4 + 24 }
        return postingBytes + termBytes + slotBytes
    }

    /// Indexes (or replaces) the document at `slot` with its terms.
    public mutating func set(slot: UInt32, terms: [String]) {
        remove(slot: slot)
        let index = Int(slot)
        if lengths.count <= index {
            lengths.append(contentsOf: repeatElement(0, count: index + 1 - lengths.count))
            termsOfSlot.append(contentsOf: repeatElement([], count: index + 1 - termsOfSlot.count))
        }
        guard !terms.isEmpty else { return }
        var ids: [UInt32] = []
        ids.reserveCapacity(terms.count)
        for term in terms {
            if let known = termIDs[term] {
                ids.append(known)
            } else {
                let id = UInt32(postings.count)
                termIDs[term] = id
                postings.append(Postings())
                ids.append(id)
            }
        }
        // Sorted ids give each distinct term and its frequency as one run.
        ids.sort()
        let length = UInt32(terms.count)
        var distinct: [UInt32] = []
        var start = 0
        while start < ids.count {
            let id = ids[start]
            var end = start + 1
            while end < ids.count, ids[end] == id { end += 1 }
            let frequency = UInt32(end - start)
            distinct.append(id)
            // In place: a copy of the list out of the array would make each
            // append copy the whole list (copy-on-write).
            let term = Int(id)
            if let last = postings[term].slots.last, last >= slot, !postings[term].needsCompaction {
                postings[term].needsCompaction = true
                dirtyTerms.append(id)
            }
            postings[term].slots.append(slot)
            postings[term].frequencies.append(frequency)
            postings[term].documentCount += 1
            postings[term].maximumFrequency = max(postings[term].maximumFrequency, frequency)
            postings[term].minimumLength = min(postings[term].minimumLength, length)
            start = end
        }
        lengths[index] = length
        termsOfSlot[index] = distinct
        documentCount += 1
        totalLength += Int(length)
        assert(documentCount >= 0 && totalLength >= 0, "counts stay non-negative")
    }

    /// Forgets the document at `slot` (its postings are dropped by the next `compact`).
    public mutating func remove(slot: UInt32) {
        let index = Int(slot)
        guard index < lengths.count, lengths[index] > 0 else { return }
        for id in termsOfSlot[index] {
            postings[Int(id)].documentCount -= 1
            if !postings[Int(id)].needsCompaction {
                postings[Int(id)].needsCompaction = true
                dirtyTerms.append(id)
            }
        }
        totalLength -= Int(lengths[index])
        documentCount -= 1
        lengths[index] = 0
        termsOfSlot[index] = []
        assert(documentCount >= 0 && totalLength >= 0, "counts stay non-negative")
    }

    /// The exact top `k` documents for the query terms by BM25, best first,
    /// ties to the smaller slot. Each distinct term counts once. `accept`
    /// restricts the documents (a filter); nil accepts every one.
    public mutating func search(_ queryTerms: [String], k: Int, accept: ((UInt32) -> Bool)? = nil) -> [Hit] {
        compact()
        return searchCompacted(queryTerms, k: k, accept: accept)
    }

    /// True when writes since the last `compact` left lists to tidy.
    public var needsCompaction: Bool { !dirtyTerms.isEmpty }

    /// `search` on an index compacted after its last change, without mutating
    /// it: many readers can run it at once while one writer waits.
    public func searchCompacted(_ queryTerms: [String], k: Int, accept: ((UInt32) -> Bool)? = nil) -> [Hit] {
        precondition(dirtyTerms.isEmpty, "compact after writing, before searching")
        guard k > 0, documentCount > 0 else { return [] }
        var seen = Set<String>()
        return topK(queryTerms.filter { seen.insert($0).inserted }, k: k, accept: accept)
    }

    /// For each slot, whether its document holds every one of `terms` (by
    /// binary search in their lists; compacted index). A term no document
    /// holds makes every answer false.
    public func holdingAll(_ terms: [String], among slots: [UInt32]) -> [Bool] {
        precondition(dirtyTerms.isEmpty, "compact after writing, before searching")
        var lists: [Int] = []
        for term in Set(terms) {
            guard let id = termIDs[term], postings[Int(id)].documentCount > 0 else { return slots.map { _ in false } }
            lists.append(Int(id))
        }
        // Rarest first: most slots fail on it.
        lists.sort { postings[$0].slots.count < postings[$1].slots.count }
        return slots.map { slot in
            lists.allSatisfy { id in
                var low = 0
                var high = postings[id].slots.count
                while low < high {
                    let middle = (low + high) / 2
                    if postings[id].slots[middle] < slot { low = middle + 1 } else { high = middle }
                }
                return low < postings[id].slots.count && postings[id].slots[low] == slot
            }
        }
    }

    /// Sorts appended postings and drops removed documents' (searches call it).
    public mutating func compact() {
        for term in dirtyTerms {
            let id = Int(term)
            let slots = postings[id].slots
            let frequencies = postings[id].frequencies
            var keptSlots: [UInt32] = []
            var keptFrequencies: [UInt32] = []
            keptSlots.reserveCapacity(postings[id].documentCount)
            keptFrequencies.reserveCapacity(postings[id].documentCount)
            forEachNewestEntry(slots) { slot, position in
                if holds(slot: slot, term: term) {
                    keptSlots.append(slot)
                    keptFrequencies.append(frequencies[position])
                }
            }
            postings[id].slots = keptSlots
            postings[id].frequencies = keptFrequencies
            postings[id].needsCompaction = false
            assert(keptSlots.count == postings[id].documentCount, "one posting per live document holding the term")
        }
        dirtyTerms.removeAll(keepingCapacity: true)
    }

    /// Whether the slot's current document holds the term (its term list is sorted).
    private func holds(slot: UInt32, term: UInt32) -> Bool {
        let index = Int(slot)
        guard lengths[index] > 0 else { return false }
        let terms = termsOfSlot[index]
        var low = 0
        var high = terms.count
        while low < high {
            let middle = (low + high) / 2
            if terms[middle] < term { low = middle + 1 } else { high = middle }
        }
        return low < terms.count && terms[low] == term
    }

    private func topK(_ queryTerms: [String], k: Int, accept: ((UInt32) -> Bool)?) -> [Hit] {
        let n = Double(documentCount)
        let averageLength = Double(totalLength) / n
        let k1 = parameters.k1
        let b = parameters.b
        // Terms by their list's index, not a copy of it: a copied list would
        // retain and release its arrays on every access in the loops below.
        struct Term {
            var id: Int
            var count: Int
            /// idf · (k1 + 1): the part of every posting's score that is the term's.
            var weight: Double
            var bound: Double
            var cursor = 0
            /// The slot at the cursor, UInt32.max past the end: the candidate
            /// loop reads it without reaching into the list.
            var current: UInt32
        }
        var terms: [Term] = []
        for text in queryTerms {
            guard let id = termIDs[text] else { continue }
            let list = postings[Int(id)]
            guard list.documentCount > 0 else { continue }
            let nt = Double(list.documentCount)
            let idf = log(1 + (n - nt + 0.5) / (nt + 0.5))
            let tf = Double(list.maximumFrequency)
            let norm = k1 * (1 - b + b * Double(list.minimumLength) / averageLength)
            terms.append(Term(id: Int(id), count: list.slots.count, weight: idf * (k1 + 1), bound: idf * tf * (k1 + 1) / (tf + norm),
                              current: list.slots.first ?? UInt32.max))
        }
        guard !terms.isEmpty else { return [] }
        terms.sort { $0.bound < $1.bound }
        var prefixBound = [Double](repeating: 0, count: terms.count + 1)
        for index in terms.indices { prefixBound[index + 1] = prefixBound[index] + terms[index].bound }

        var heap = TopK(k: k)
        var essentialFrom = 0  // terms[essentialFrom...] are essential
        // norm = k1 · (1 − b + b · length / average) = normBase + normScale · length
        let normBase = k1 * (1 - b)
        let normScale = k1 * b / averageLength
        @inline(__always) func score(_ weight: Double, _ frequency: UInt32, _ slot: UInt32) -> Double {
            let tf = Double(frequency)
            return weight * tf / (tf + normBase + normScale * Double(lengths[Int(slot)]))
        }
        while true {
            var candidate = UInt32.max
            for index in essentialFrom..<terms.count { candidate = min(candidate, terms[index].current) }
            if candidate == UInt32.max { break }
            if let accept, !accept(candidate) {
                for index in essentialFrom..<terms.count where terms[index].current == candidate {
                    let cursor = terms[index].cursor + 1
                    terms[index].cursor = cursor
                    terms[index].current = cursor < terms[index].count ? postings[terms[index].id].slots[cursor] : UInt32.max
                }
                continue
            }
            var total = 0.0
            for index in essentialFrom..<terms.count where terms[index].current == candidate {
                let id = terms[index].id
                let cursor = terms[index].cursor
                total += score(terms[index].weight, postings[id].frequencies[cursor], candidate)
                terms[index].cursor = cursor + 1
                terms[index].current = cursor + 1 < terms[index].count ? postings[id].slots[cursor + 1] : UInt32.max
            }
            // Non-essential terms, strongest first, while the document can still make the top k.
            var index = essentialFrom - 1
            while index >= 0, total + prefixBound[index + 1] >= heap.threshold {
                let id = terms[index].id
                let low = gallop(postings[id].slots, from: terms[index].cursor, to: candidate)
                terms[index].cursor = low
                terms[index].current = low < terms[index].count ? postings[id].slots[low] : UInt32.max
                if terms[index].current == candidate {
                    total += score(terms[index].weight, postings[id].frequencies[low], candidate)
                }
                index -= 1
            }
            // Candidates come in slot order: once the heap is full, a document
            // that only ties the k-th score has the larger slot and stays out.
            if heap.isFull, total <= heap.threshold { continue }
            if heap.offer(Hit(slot: candidate, score: total)) {
                // Strictly below: a document tying the k-th score may still enter on a smaller slot.
                while essentialFrom < terms.count, heap.isFull, prefixBound[essentialFrom + 1] < heap.threshold { essentialFrom += 1 }
            }
        }
        return heap.sorted()
    }
}


// MARK: - Stored form

extension BM25Index {
    public enum FormatError: Error, Equatable, CustomStringConvertible {
        case corrupted(String)
        public var description: String {
            switch self { case .corrupted(let reason): return "text index file: \(reason)" }
        }
    }

    /// "SXBM25" and a format version: a file of another version is refused
    /// (the collection rebuilds it from its records), never misread.
    static let magic: [UInt8] = Array("SXBM25".utf8) + [0, 1]

    /// The index as bytes (little-endian): magic, k1 and b, the per-slot
    /// lengths, then per term its UTF-8 name and its sorted (slot, frequency)
    /// lists. Counts and bounds are derived again when read. Compacts first.
    public mutating func serialized() -> [UInt8] {
        compact()
        var out = Self.magic
        func put<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) } }
        put(parameters.k1.bitPattern)
        put(parameters.b.bitPattern)
        put(UInt32(lengths.count))
        for length in lengths { put(length) }
        let live = postings.indices.filter { postings[$0].documentCount > 0 }
        put(UInt32(live.count))
        var names = [String](repeating: "", count: postings.count)
        for (name, id) in termIDs { names[Int(id)] = name }
        for id in live {
            let name = Array(names[id].utf8)
            put(UInt16(name.count))
            out.append(contentsOf: name)
            put(UInt32(postings[id].slots.count))
            for slot in postings[id].slots { put(slot) }
            for frequency in postings[id].frequencies { put(frequency) }
        }
        return out
    }

    /// Reads `serialized()`'s bytes, checking every count and slot against
    /// the file's size and the slot lengths; damage is an error, not a crash.
    public init(serialized bytes: [UInt8]) throws(FormatError) {
        let parsed: Result<BM25Index, FormatError> = bytes.withUnsafeBytes { raw in
            do throws(FormatError) { return .success(try Self.parse(raw)) } catch { return .failure(error) }
        }
        self = try parsed.get()
    }

    /// One pass over the bytes with unaligned loads, lists copied whole (the
    /// format is little-endian, as every host this runs on), then each slot's
    /// term list filled at its exact size: an open reads this file.
    private static func parse(_ raw: UnsafeRawBufferPointer) throws(FormatError) -> BM25Index {
        var offset = 0
        func take<T: FixedWidthInteger>(_: T.Type) throws(FormatError) -> T {
            let size = MemoryLayout<T>.size
            guard offset + size <= raw.count else { throw .corrupted("truncated at byte \(offset)") }
            let value = raw.loadUnaligned(fromByteOffset: offset, as: T.self)
            offset += size
            return T(littleEndian: value)
        }
        func takeArray(_ count: Int) -> [UInt32] {
            let start = offset
            offset += count * 4
            return [UInt32](unsafeUninitializedCapacity: count) { buffer, initialized in
                UnsafeMutableRawBufferPointer(buffer).copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[start..<start + count * 4]))
                initialized = count
            }
        }
        guard 1.littleEndian == 1 else { throw .corrupted("this host is big-endian; the format is little-endian") }
        guard raw.count >= magic.count, raw.prefix(magic.count).elementsEqual(magic) else {
            throw .corrupted("not a text index of this format version")
        }
        offset = magic.count
        let k1 = Double(bitPattern: try take(UInt64.self))
        let b = Double(bitPattern: try take(UInt64.self))
        guard k1.isFinite, k1 >= 0, b.isFinite, (0...1).contains(b) else { throw .corrupted("parameters out of range") }
        var index = BM25Index(parameters: Parameters(k1: k1, b: b))
        let slotCount = Int(try take(UInt32.self))
        guard slotCount * 4 <= raw.count - offset else { throw .corrupted("slot count past the end") }
        index.lengths = takeArray(slotCount)
        let termCount = Int(try take(UInt32.self))
        guard termCount <= raw.count - offset else { throw .corrupted("term count past the end") }
        var seenLength = [UInt32](repeating: 0, count: slotCount)
        var termsPerSlot = [UInt32](repeating: 0, count: slotCount)
        index.postings.reserveCapacity(termCount)
        index.termIDs.reserveCapacity(termCount)
        for id in 0..<termCount {
            let nameLength = Int(try take(UInt16.self))
            guard offset + nameLength <= raw.count,
                  let name = String(validating: UnsafeRawBufferPointer(rebasing: raw[offset..<offset + nameLength]), as: UTF8.self),
                  !name.isEmpty
            else { throw .corrupted("term \(id) has no valid name") }
            offset += nameLength
            let count = Int(try take(UInt32.self))
            guard count > 0, count * 8 <= raw.count - offset else { throw .corrupted("term '\(name)' list past the end") }
            var list = Postings()
            list.slots = takeArray(count)
            list.frequencies = takeArray(count)
            var previous = -1
            for position in 0..<count {
                let slot = Int(list.slots[position])
                let frequency = list.frequencies[position]
                guard slot < slotCount, slot > previous, index.lengths[slot] > 0, frequency > 0 else {
                    throw .corrupted("term '\(name)' has an invalid posting")
                }
                previous = slot
                list.maximumFrequency = max(list.maximumFrequency, frequency)
                list.minimumLength = min(list.minimumLength, index.lengths[slot])
                termsPerSlot[slot] += 1
                seenLength[slot] &+= frequency
            }
            list.documentCount = count
            guard index.termIDs.updateValue(UInt32(id), forKey: name) == nil else { throw .corrupted("term '\(name)' twice") }
            index.postings.append(list)
        }
        guard offset == raw.count else { throw .corrupted("\(raw.count - offset) bytes after the last term") }
        guard seenLength == index.lengths else { throw .corrupted("document lengths disagree with the postings") }
        var termsOfSlot = termsPerSlot.map { count -> [UInt32] in
            var terms: [UInt32] = []
            terms.reserveCapacity(Int(count))
            return terms
        }
        for (id, list) in index.postings.enumerated() {
            for slot in list.slots { termsOfSlot[Int(slot)].append(UInt32(id)) }
        }
        index.termsOfSlot = termsOfSlot
        index.documentCount = index.lengths.reduce(0) { $0 + ($1 > 0 ? 1 : 0) }
        index.totalLength = index.lengths.reduce(0) { $0 + Int($1) }
        return index
    }
}

/// Visits a posting list's entries in slot order, each slot once at its newest
/// (last appended) position: (slot, position) packed in one word and sorted, so
/// of a slot's entries the newest comes last. A list that is only stale
/// (removals, no out-of-order append) is already in order and is not sorted.
@inline(__always)
func forEachNewestEntry(_ slots: [UInt32], _ body: (_ slot: UInt32, _ position: Int) -> Void) {
    var order = slots.indices.map { UInt64(slots[$0]) << 32 | UInt64($0) }
    if zip(slots, slots.dropFirst()).contains(where: { $0 >= $1 }) { order.sort() }
    for (index, entry) in order.enumerated() {
        let slot = UInt32(truncatingIfNeeded: entry >> 32)
        if index + 1 < order.count, UInt32(truncatingIfNeeded: order[index + 1] >> 32) == slot { continue }  // a newer entry follows
        body(slot, Int(truncatingIfNeeded: entry & 0xFFFF_FFFF))
    }
}

/// The first position at or after `start` whose slot is at least `target`, by
/// galloping: MaxScore's candidates only grow, so the next match is usually a
/// few entries on, not half a list away.
@inline(__always)
func gallop(_ slots: [UInt32], from start: Int, to target: UInt32) -> Int {
    var low = start
    var high = slots.count
    var step = 1
    while low + step < high, slots[low + step] < target {
        low += step
        step <<= 1
    }
    high = min(high, low + step + 1)
    while low < high {
        let middle = (low + high) / 2
        if slots[middle] < target { low = middle + 1 } else { high = middle }
    }
    return low
}

/// The k best hits so far: a min-heap on (score, then larger slot worse), so
/// ties break towards the smaller slot, deterministically.
struct TopK {
    let k: Int
    /// The threshold until k are held: 0 for BM25, whose scores are positive;
    /// −∞ for dot products, which need not be.
    let floor: Double
    private var items: [BM25Index.Hit] = []

    init(k: Int, floor: Double = 0) {
        self.k = k
        self.floor = floor
    }

    /// The score a document must reach to enter.
    var threshold: Double { items.count < k ? floor : items[0].score }
    var isFull: Bool { items.count >= k }

    private static func worse(_ a: BM25Index.Hit, _ b: BM25Index.Hit) -> Bool {
        a.score < b.score || (a.score == b.score && a.slot > b.slot)
    }

    /// Returns true when the hit entered the top k.
    mutating func offer(_ hit: BM25Index.Hit) -> Bool {
        if items.count < k {
            items.append(hit)
            var child = items.count - 1
            while child > 0 {
                let parent = (child - 1) / 2
                guard Self.worse(items[child], items[parent]) else { break }
                items.swapAt(child, parent)
                child = parent
            }
            return true
        }
        guard Self.worse(items[0], hit) else { return false }
        items[0] = hit
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var worst = parent
            if left < items.count, Self.worse(items[left], items[worst]) { worst = left }
            if right < items.count, Self.worse(items[right], items[worst]) { worst = right }
            if worst == parent { break }
            items.swapAt(parent, worst)
            parent = worst
        }
        return true
    }

    func sorted() -> [BM25Index.Hit] { items.sorted { Self.worse($1, $0) } }
}
