import CSextantKernels
import SextantKernels
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Hierarchical navigable small-world graph over float16 vectors (Malkov &
/// Yashunin), kept in flat arrays indexed by a 32-bit slot id.
///
/// Layout (all in `MemoryRegion`s, so a checkpoint can be mapped back as is):
///   vectors   slot × paddedDimensions × f16
///   level0    slot × [version, count, 2M neighbour ids]           (UInt32)
///   nodeInfo  slot × `NodeEntry`: [level u8, flags u8, upperCapacity u8, _, upperBlock u32]
///   upper     block × [version, count, M neighbour ids], a node of level L
///             owning L consecutive blocks from `upperOffset`
///   codes     slot × code (quantized layouts only, see `CodeBook`)
///
/// Quantized layouts walk the graph on the codes and rank the best candidates
/// exactly against the float16 vectors at the end (`rerank`): the vectors are
/// then read only for those candidates, their pages advised together.
///
/// Concurrency: any number of searches run alongside inserts. Neighbour lists
/// are seqlocks (see `sx_list_read`), so a reader never acts on a half-written
/// list. An insert first finds its neighbours on every level and writes its own
/// lists, then links back bottom-up, so a node reachable on level L already has
/// complete lists below L. Inserts may run on several threads (distinct slots);
/// `reclaimDeleted` must not overlap an insert (the storage indexer serialises
/// them). Slots are reused only after a grace period of `gate`.
public final class HNSWIndex: @unchecked Sendable {
    public let layout: HNSWLayout
    public let kernels: DistanceKernels
    /// Readers enter this gate; reclamation waits on it before a slot is reused.
    public let gate = ReclamationGate()

    public let regions: HNSWRegions
    private let vectors: UnsafeMutablePointer<UInt16>
    private let level0: UnsafeMutablePointer<UInt32>
    private let nodeInfo: UnsafeMutablePointer<UInt8>
    private let upper: UnsafeMutablePointer<UInt32>
    /// [entry, slotHighWater, upperBlocksUsed, insertCounter, liveCount, deletedCount],
    /// one cache line each. Entry packs (maxLevel + 1) << 32 | slot; 0 is empty.
    private let control: UnsafeMutablePointer<UInt64>
    private let entryLock = Mutex<Void>(())
    private let contexts: SearchContextPool
    private let levelMultiplier: Double
    private let metricCode: UInt32
    private let stride: Int
    private let padded: Int
    /// The codes the walk reads when the layout quantizes; nil: it reads float16 vectors.
    private let codeBook: CodeBook?

    static let flagPresent: UInt8 = 1
    static let flagDeleted: UInt8 = 2
    /// Claimed by one `link` until the node is present: two links of one slot never interleave.
    static let flagLinking: UInt8 = 4
    private static let controlStride = 8
    private enum Control: Int { case entry = 0, highWater, upperUsed, insertCounter, live, deleted }

    /// Below this many live vectors, a scan is as cheap as a graph walk and exact.
    public static let exactScanLiveLimit = 2_048
    /// A filter expected to match at most this many slots is answered by scanning them.
    public static let exactScanMatchLimit = 2_048
    public static let maximumK = 4_096

    public init(
        layout: HNSWLayout, regions: HNSWRegions, state: HNSWState = HNSWState(),
        kernels: DistanceKernels = .selected, codeKernels: CodeKernels = .selected
    ) throws(IndexError) {
        guard !layout.quantization.usesCodes || (regions.codes?.reservedBytes ?? 0) >= layout.codeRegionBytes else {
            throw .invalidParameter("a quantized layout needs a codes region")
        }
        guard state.quantizer == nil || state.quantizer?.low.count == layout.dimensions else {
            throw .corrupted("quantizer of \(state.quantizer?.low.count ?? 0) dimensions for a \(layout.dimensions)-dimension index")
        }
        guard regions.vectors.reservedBytes >= layout.vectorRegionBytes,
            regions.level0.reservedBytes >= layout.level0RegionBytes,
            regions.nodeInfo.reservedBytes >= layout.nodeInfoRegionBytes,
            regions.upper.reservedBytes >= layout.upperRegionBytes
        else { throw .invalidParameter("regions are smaller than the layout needs") }
        guard Int(state.slotHighWater) <= layout.capacity, Int(state.upperBlocksUsed) <= layout.upperBlockCapacity else {
            throw .corrupted("state exceeds capacity")
        }
        self.layout = layout
        self.kernels = kernels
        self.regions = regions
        vectors = regions.vectors.base.assumingMemoryBound(to: UInt16.self)
        level0 = regions.level0.base.assumingMemoryBound(to: UInt32.self)
        nodeInfo = regions.nodeInfo.base.assumingMemoryBound(to: UInt8.self)
        upper = regions.upper.base.assumingMemoryBound(to: UInt32.self)
        control = .allocate(capacity: 6 * Self.controlStride)
        control.initialize(repeating: 0, count: 6 * Self.controlStride)
        contexts = SearchContextPool(paddedDimensions: layout.paddedDimensions, maxNeighbors: layout.maxNeighborsLevel0)
        levelMultiplier = 1 / log(Double(layout.parameters.m))
        metricCode = layout.metric.kernelCode
        stride = layout.vectorStrideHalves
        padded = layout.paddedDimensions
        if layout.quantization.usesCodes, let codes = regions.codes {
            codeBook = CodeBook(layout: layout, region: codes, parameters: state.quantizer, kernels: codeKernels)
        } else {
            codeBook = nil
        }
        if state.maxLevel >= 0 {
            guard state.entrySlot < state.slotHighWater else { throw .corrupted("entry slot beyond high water") }
            store(.entry, (UInt64(state.maxLevel + 1) << 32) | UInt64(state.entrySlot))
        }
        store(.highWater, UInt64(state.slotHighWater))
        store(.upperUsed, UInt64(state.upperBlocksUsed))
        store(.insertCounter, state.insertCounter)
        var live: UInt64 = 0
        var deleted: UInt64 = 0
        for slot in 0..<Int(state.slotHighWater) {
            let flags = nodeInfo[slot * HNSWLayout.nodeInfoStrideBytes + NodeEntry.flags]
            if flags & Self.flagPresent != 0 {
                if flags & Self.flagDeleted != 0 { deleted += 1 } else { live += 1 }
            }
        }
        store(.live, live)
        store(.deleted, deleted)
    }

    /// A purely in-memory index.
    public convenience init(
        dimensions: Int, metric: Metric, parameters: HNSWParameters = HNSWParameters(), capacity: Int,
        quantization: Quantization = .none, kernels: DistanceKernels = .selected
    ) throws(IndexError) {
        let layout = try HNSWLayout(dimensions: dimensions, metric: metric, parameters: parameters, capacity: capacity,
                                    quantization: quantization)
        try self.init(layout: layout, regions: try .anonymous(for: layout), kernels: kernels)
    }

    deinit { control.deallocate() }

    // MARK: - Control words and per-node accessors

    @inline(__always) private func load(_ word: Control) -> UInt64 {
        sx_load_acquire_u64(control + word.rawValue * Self.controlStride)
    }
    @inline(__always) private func store(_ word: Control, _ value: UInt64) {
        sx_store_release_u64(control + word.rawValue * Self.controlStride, value)
    }
    @inline(__always) private func add(_ word: Control, _ delta: Int) {
        _ = sx_fetch_add_u64(control + word.rawValue * Self.controlStride, UInt64(bitPattern: Int64(delta)))
    }

    public var slotHighWater: Int { Int(load(.highWater)) }
    public var liveCount: Int { Int(load(.live)) }
    public var deletedCount: Int { Int(load(.deleted)) }

    public var state: HNSWState {
        let entry = load(.entry)
        return HNSWState(
            slotHighWater: UInt32(load(.highWater)), entrySlot: UInt32(truncatingIfNeeded: entry),
            maxLevel: Int32(entry >> 32) - 1, upperBlocksUsed: UInt32(load(.upperUsed)),
            insertCounter: load(.insertCounter), quantizer: codeBook?.parameters)
    }

    /// Bytes of vectors, graph (with the node table) and codes actually used.
    public var usedBytes: (vectors: Int, graph: Int, codes: Int) {
        let slots = slotHighWater
        let graph =
            slots * (layout.level0StrideWords * 4 + HNSWLayout.nodeInfoStrideBytes)
            + Int(load(.upperUsed)) * layout.upperStrideWords * 4
        return (slots * layout.vectorStrideBytes, graph, slots * layout.codeStrideBytes)
    }

    /// Bytes a search needs resident: the graph and node table, plus the codes
    /// when the layout quantizes (the float16 vectors are then read only to
    /// rank the best candidates), else the float16 vectors.
    public var residentSearchBytes: Int {
        let used = usedBytes
        return used.graph + (codeBook == nil ? used.vectors : used.codes)
    }

    /// Byte offsets of a node's fields in its 8-byte node-table entry.
    private enum NodeEntry {
        /// The node's top level (0 for most nodes).
        static let level = 0
        /// `flagPresent` | `flagDeleted`, read and written atomically.
        static let flags = 1
        /// Upper-level blocks the slot owns: kept across reuse, so a reused slot
        /// of no higher level needs no new blocks.
        static let upperCapacity = 2
        /// A seqlock over the slot's vector and code: odd while `moveVector`
        /// rewrites them, so a reader that needs the whole vector reads again.
        static let vectorVersion = 3
        /// u32: the first of the slot's consecutive upper-level blocks.
        static let upperBlock = 4
    }

    @inline(__always) private func info(_ slot: UInt32) -> UnsafeMutablePointer<UInt8> {
        nodeInfo + Int(slot) * HNSWLayout.nodeInfoStrideBytes
    }
    @inline(__always) private func flags(_ slot: UInt32) -> UInt8 { sx_load_acquire_u8(info(slot) + NodeEntry.flags) }
    @inline(__always) private func setFlags(_ slot: UInt32, _ value: UInt8) {
        sx_store_release_u8(info(slot) + NodeEntry.flags, value)
    }
    @inline(__always) private func levelOf(_ slot: UInt32) -> Int { Int(info(slot)[NodeEntry.level]) }
    @inline(__always) private func upperCapacity(_ slot: UInt32) -> Int { Int(info(slot)[NodeEntry.upperCapacity]) }
    @inline(__always) private func upperOffset(_ slot: UInt32) -> Int {
        Int(UnsafeMutableRawPointer(info(slot) + NodeEntry.upperBlock).assumingMemoryBound(to: UInt32.self).pointee)
    }
    @inline(__always) func vector(_ slot: UInt32) -> UnsafeMutablePointer<UInt16> { vectors + Int(slot) * stride }

    @inline(__always) private func list(_ slot: UInt32, level: Int) -> UnsafeMutablePointer<UInt32> {
        if level == 0 { return level0 + Int(slot) * layout.level0StrideWords }
        return upper + (upperOffset(slot) + level - 1) * layout.upperStrideWords
    }
    @inline(__always) private func capacity(level: Int) -> Int {
        level == 0 ? layout.maxNeighborsLevel0 : layout.maxNeighborsUpper
    }

    /// True if the slot holds a vector that has not been deleted.
    public func isLive(_ slot: UInt32) -> Bool {
        Int(slot) < slotHighWater && flags(slot) & (Self.flagPresent | Self.flagDeleted) == Self.flagPresent
    }

    /// The stored vector (as float32, normalised if the metric is cosine).
    public func storedVector(_ slot: UInt32) -> [Float] {
        let out = [Float](unsafeUninitializedCapacity: padded) { buffer, count in
            if let base = buffer.baseAddress { HalfConversion.toFloat(vector(slot), base, count: padded) }
            count = padded
        }
        return Array(out.prefix(layout.dimensions))
    }

    // MARK: - Insert

    /// The guards every way of writing a slot shares.
    private func checkWritable(_ slot: UInt32, dimensions: Int) throws(IndexError) {
        guard dimensions == layout.dimensions else {
            throw .dimensionMismatch(expected: layout.dimensions, actual: dimensions)
        }
        guard Int(slot) < layout.capacity else { throw .slotOutOfRange(slot) }
        guard flags(slot) == 0 else { throw .slotInUse(slot) }
    }

    /// Inserts `vector` at `slot`, which must be free (never used, or reclaimed):
    /// `writeVector` and `link` in one step, for callers with float32 input.
    public func insert(slot: UInt32, vector input: UnsafeBufferPointer<Float>) throws(IndexError) {
        try checkWritable(slot, dimensions: input.count)
        guard VectorMath.isFinite(input) else { throw .nonFiniteVector }
        try contexts.withContext(slotCount: max(slotHighWater, Int(slot) + 1)) { (context) throws(IndexError) in
            layout.prepare(input, into: context.query)
            HalfConversion.toHalf(context.query, vector(slot), count: padded)
            regions.vectors.noteWritten(Int(slot) * layout.vectorStrideBytes, layout.vectorStrideBytes)
            raiseHighWater(to: slot &+ 1)
            try linkPrepared(slot, context)
        }
    }

    /// The float16 form a vector is stored in (see `HNSWLayout.storedForm`).
    public func storedForm(_ input: UnsafeBufferPointer<Float>) throws(IndexError) -> [UInt16] {
        try layout.storedForm(input)
    }

    /// Writes a stored-form vector into a free slot without linking it: the slot can
    /// be scored with `scan` at once and linked into the graph later with `link`.
    public func writeVector(slot: UInt32, halves: UnsafeBufferPointer<UInt16>) throws(IndexError) {
        try checkWritable(slot, dimensions: halves.count)
        let destination = vector(slot)
        for index in 0..<layout.dimensions { destination[index] = halves[index] }
        for index in layout.dimensions..<padded { destination[index] = 0 }
        regions.vectors.noteWritten(Int(slot) * layout.vectorStrideBytes, layout.vectorStrideBytes)
        raiseHighWater(to: slot &+ 1)
    }

    /// A re-embedded record whose vector moved only a little keeps its node:
    /// `moveVector` rewrites a linked node's vector and code in place when the
    /// new vector lies closer to the old one than `moveFraction` of the way to
    /// the node's nearest level-0 neighbour. Its links, chosen for the old
    /// position, then still hold for the new one; no tombstone is left, nothing
    /// waits in the unindexed tail, and nothing needs linking.
    public static let moveFraction: Float = 0.25

    /// Moves a linked, live node to `halves` (stored form) if the move is small
    /// (`moveFraction`); returns false, changing nothing, otherwise. Callers
    /// serialise writes to one slot (the collection's mutation lock). A walk
    /// reading the node meanwhile sees the old or the new code; readers of the
    /// whole vector (`readVector`) retry on the node's version.
    public func moveVector(slot: UInt32, halves: UnsafeBufferPointer<UInt16>) -> Bool {
        guard halves.count == layout.dimensions, let source = halves.baseAddress, Int(slot) < slotHighWater,
            flags(slot) == Self.flagPresent
        else { return false }
        return contexts.withContext(slotCount: slotHighWater) { context -> Bool in
            // How far the vector moves, exactly, from the new vector (as a query) to the stored one.
            HalfConversion.toFloat(source, context.query, count: layout.dimensions)
            for index in layout.dimensions..<padded { context.query[index] = 0 }
            var target = slot
            var moved: Float = 0
            kernels.batchHalf(context.query, vectors, stride, &target, 1, padded, metricCode, &moved)
            // The nearest neighbour's distance, measured as the walk measures it.
            let count = Int(sx_list_read(list(slot, level: 0), UInt32(layout.maxNeighborsLevel0), context.neighbors, nil))
            guard count > 0 else { return false }
            loadNode(slot, context, .scratch)
            walkDistances(context, .scratch, context.neighbors, count, context.distances)
            var nearest = Float.greatestFiniteMagnitude
            for index in 0..<count { nearest = min(nearest, context.distances[index]) }
            guard moved < Self.moveFraction * nearest else { return false }
            let version = info(slot) + NodeEntry.vectorVersion
            let before = sx_load_acquire_u8(version)
            sx_store_release_u8(version, before | 1)
            let destination = vector(slot)
            for index in 0..<layout.dimensions { destination[index] = source[index] }
            regions.vectors.noteWritten(Int(slot) * layout.vectorStrideBytes, layout.vectorStrideBytes)
            if let codeBook {
                HalfConversion.toFloat(destination, context.query, count: padded)
                codeBook.encode(slot, from: context.query)
            }
            sx_store_release_u8(version, (before | 1) &+ 1)
            return true
        }
    }

    /// A slot's stored float16 vector, without the padding. Valid while the slot
    /// is not reused: callers read it under the reclamation gate or hold the slot.
    public func storedHalves(_ slot: UInt32) -> UnsafeBufferPointer<UInt16> {
        precondition(Int(slot) < layout.capacity, "slot \(slot) outside the index")
        return UnsafeBufferPointer(start: vector(slot), count: layout.dimensions)
    }

    /// True if `slot` stores exactly these float16 values.
    public func storesHalves(_ slot: UInt32, _ halves: [UInt16]) -> Bool {
        guard halves.count == layout.dimensions, Int(slot) < layout.capacity else { return false }
        return halves.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return false }
            return memcmp(vector(slot), base, layout.dimensions * MemoryLayout<UInt16>.size) == 0
        }
    }

    /// The sign code (`SignCodes`) of a stored vector.
    public func signCode(_ slot: UInt32, into code: UnsafeMutablePointer<UInt64>) {
        assert(Int(slot) < slotHighWater, "sign code of a slot never written")
        SignCodes.encode(halves: vector(slot), dimensions: layout.dimensions, into: code)
    }

    /// True when a stored vector has length 1 within f16 rounding: sign codes
    /// rank unit vectors by angle, which is their order under every metric.
    public func hasUnitLength(_ slot: UInt32) -> Bool {
        // One F16C conversion of the whole vector, then the length with the
        // selected dot kernel: this runs per record on writes to l2/ip collections.
        let dimensions = layout.dimensions
        let squaredLength = withUnsafeTemporaryAllocation(of: Float.self, capacity: dimensions) { buffer -> Float in
            guard let floats = buffer.baseAddress else { return 0 }
            HalfConversion.toFloat(vector(slot), floats, count: dimensions)
            return kernels.dotFloat(floats, floats, dimensions)
        }
        return abs(squaredLength - 1) <= 0.01
    }

    /// Links a slot whose vector `writeVector` stored into the graph.
    public func link(slot: UInt32) throws(IndexError) {
        guard Int(slot) < slotHighWater else { throw .slotOutOfRange(slot) }
        guard sx_cas_u8(info(slot) + NodeEntry.flags, 0, Self.flagLinking) else { throw .slotInUse(slot) }
        do {
            try contexts.withContext(slotCount: slotHighWater) { (context) throws(IndexError) in
                HalfConversion.toFloat(vector(slot), context.query, count: padded)
                try linkPrepared(slot, context)
            }
        } catch {
            setFlags(slot, 0)
            throw error
        }
        assert(flags(slot) & Self.flagLinking == 0, "a linked node is present, its claim released")
    }

    /// Links a written slot whose float32 form is in `context.query`: its code
    /// first (fitting the code book on the vectors written so far if this is
    /// the first link), then its place in the graph.
    private func linkPrepared(_ slot: UInt32, _ context: SearchContext) throws(IndexError) {
        if let codeBook {
            if !codeBook.isFitted { codeBook.fitOnce { fitFromWrittenSlots() } }
            codeBook.encode(slot, from: context.query)
            codeBook.prepare(context.query, sq8: context.querySQ8, bits: context.queryBits)
        }
        let nodeLevel = randomLevel()
        try allocateLevels(slot, nodeLevel)
        connect(slot, nodeLevel, context)
        add(.live, 1)
    }

    // MARK: - Codes

    /// At most this many vectors fit the code book (a uniform sample of the slots).
    public static let quantizerSampleLimit = 65_536

    /// Fits the code book on `sample` (vectors as callers write them). A bulk
    /// loader calls this before its first insert; otherwise the first link fits
    /// on the vectors written so far.
    public func fitQuantizer(_ sample: [[Float]]) throws(IndexError) {
        guard let codeBook else { return }
        guard !sample.isEmpty else { throw .invalidParameter("a fit needs at least one vector") }
        for row in sample where row.count != layout.dimensions {
            throw .dimensionMismatch(expected: layout.dimensions, actual: row.count)
        }
        let prepared = UnsafeMutablePointer<Float>.allocate(capacity: padded)
        defer { prepared.deallocate() }
        let parameters = QuantizerParameters.fit(rows: sample.count, dimensions: layout.dimensions) { index, out in
            sample[index].withUnsafeBufferPointer { layout.prepare($0, into: prepared) }
            out.update(from: prepared, count: layout.dimensions)
        }
        codeBook.fitOnce { parameters }
    }

    /// A uniform sample of the written slots' stored vectors.
    private func fitFromWrittenSlots() -> QuantizerParameters {
        let highWater = max(slotHighWater, 1)
        let rows = min(highWater, Self.quantizerSampleLimit)
        return QuantizerParameters.fit(rows: rows, dimensions: layout.dimensions) { index, out in
            HalfConversion.toFloat(vector(UInt32(index * highWater / rows)), out, count: layout.dimensions)
        }
    }

    /// Refits the code book and re-encodes every present node when the index
    /// has outgrown the sample it was fitted on sixteen times (a collection that
    /// started small). Must not overlap `insert` or `link`; returns whether it refitted.
    @discardableResult
    public func refitQuantizerIfOutgrown() -> Bool {
        guard quantizerIsOutgrown, let codeBook else { return false }
        codeBook.install(fitFromWrittenSlots())
        let floats = UnsafeMutablePointer<Float>.allocate(capacity: padded)
        defer { floats.deallocate() }
        for slot in 0..<UInt32(slotHighWater) where flags(slot) & Self.flagPresent != 0 {
            HalfConversion.toFloat(vector(slot), floats, count: padded)
            codeBook.encode(slot, from: floats)
        }
        return true
    }

    /// True when the code book was fitted on a sample a sixteenth of the live
    /// nodes or less, and a larger sample exists.
    public var quantizerIsOutgrown: Bool {
        guard let current = codeBook?.parameters else { return false }
        return current.sampleCount < Self.quantizerSampleLimit && liveCount >= 16 * current.sampleCount
    }

    /// Convenience for arrays.
    public func insert(slot: UInt32, vector: [Float]) throws(IndexError) {
        try vector.withUnsafeBufferPointer { (buffer) throws(IndexError) in try insert(slot: slot, vector: buffer) }
    }

    private func randomLevel() -> Int {
        let counter = sx_fetch_add_u64(control + Control.insertCounter.rawValue * Self.controlStride, 1)
        var x = counter &+ 0x9E37_79B9_7F4A_7C15  // splitmix64
        x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
        x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
        x ^= x >> 31
        let uniform = max(Double(x >> 11) * 0x1.0p-53, 1e-300)
        return min(Int(-log(uniform) * levelMultiplier), HNSWParameters.maximumLevel)
    }

    private func allocateLevels(_ slot: UInt32, _ nodeLevel: Int) throws(IndexError) {
        let node = info(slot)
        if nodeLevel > upperCapacity(slot) {
            let offset = Int(sx_fetch_add_u64(control + Control.upperUsed.rawValue * Self.controlStride, UInt64(nodeLevel)))
            guard offset + nodeLevel <= layout.upperBlockCapacity else {
                add(.upperUsed, -nodeLevel)
                throw .capacityExceeded("upper-level block pool is full")
            }
            UnsafeMutableRawPointer(node + NodeEntry.upperBlock).assumingMemoryBound(to: UInt32.self).pointee = UInt32(offset)
            node[NodeEntry.upperCapacity] = UInt8(nodeLevel)
        }
        node[NodeEntry.level] = UInt8(nodeLevel)
        assert(upperCapacity(slot) >= nodeLevel, "a node owns a block for each of its upper levels")
        for level in 0...nodeLevel {  // empty lists, versions kept monotonic across reuse
            let block = list(slot, level: level)
            let version = sx_load_acquire_u32(block)
            precondition(sx_list_publish(block, version & ~1, nil, 0), "list of a free slot is locked")
        }
    }

    private func raiseHighWater(to value: UInt32) {
        let word = control + Control.highWater.rawValue * Self.controlStride
        var current = sx_load_acquire_u64(word)
        while UInt64(value) > current {
            if sx_cas_u64(word, current, UInt64(value)) { return }
            current = sx_load_acquire_u64(word)
        }
    }

    private func connect(_ slot: UInt32, _ nodeLevel: Int, _ context: SearchContext) {
        let entryWord = load(.entry)
        if entryWord == 0 {
            let becameEntry = entryLock.withLock { _ -> Bool in
                guard load(.entry) == 0 else { return false }
                markPresent(slot)
                store(.entry, (UInt64(nodeLevel + 1) << 32) | UInt64(slot))
                return true
            }
            if becameEntry { return }
        }
        let entry = load(.entry)
        var current = UInt32(truncatingIfNeeded: entry)
        let maxLevel = Int(entry >> 32) - 1
        var currentDistance = distance(context, to: current)
        var level = maxLevel
        while level > nodeLevel {
            greedy(context, &current, &currentDistance, level: level)
            level -= 1
        }
        // Phase 1: choose neighbours on every level and write this node's own lists.
        let top = min(nodeLevel, maxLevel)
        for level in 0...nodeLevel {
            precondition(list(slot, level: level)[1] == 0, "a new node's lists start empty (slot \(slot), level \(level))")
        }
        var chosen = [[UInt32]](repeating: [], count: top + 1)
        for level in Swift.stride(from: top, through: 0, by: -1) {
            searchLayer(context, entry: current, entryDistance: currentDistance, ef: layout.parameters.efConstruction,
                        level: level, filter: nil, forConstruction: true)
            let candidates = context.results.drainAscending().filter { $0.slot != slot }
            if let best = candidates.first {
                current = best.slot
                currentDistance = best.distance
            }
            chosen[level] = selectNeighbors(candidates, maxCount: layout.parameters.m, context)
            assert(chosen[level].allSatisfy { levelOf($0) >= level }, "neighbours on a level reach it")
            let block = list(slot, level: level)
            let ok = chosen[level].withUnsafeBufferPointer {
                sx_list_publish(block, sx_load_acquire_u32(block), $0.baseAddress, UInt32($0.count))
            }
            precondition(ok, "a new node's list is written by its inserter alone")
        }
        markPresent(slot)
        // Phase 2: link back, bottom-up, so upper levels never lead to an unlinked lower level.
        for level in 0...top {
            for neighbor in chosen[level] { addBacklink(from: neighbor, to: slot, level: level, context) }
        }
        if nodeLevel > maxLevel {
            entryLock.withLock { _ in
                if nodeLevel > Int(load(.entry) >> 32) - 1 {
                    store(.entry, (UInt64(nodeLevel + 1) << 32) | UInt64(slot))
                }
            }
        }
    }

    private func markPresent(_ slot: UInt32) {
        setFlags(slot, Self.flagPresent)
    }

    /// hnswlib's getNeighborsByHeuristic2: keep a candidate only if it is closer
    /// to the base than to every neighbour already kept, which spreads links
    /// across directions instead of clustering them.
    private func selectNeighbors(_ sorted: [SearchHit], maxCount: Int, _ context: SearchContext) -> [UInt32] {
        if sorted.count <= maxCount { return sorted.map(\.slot) }
        var kept = [UInt32]()
        kept.reserveCapacity(maxCount)
        for candidate in sorted {
            if kept.count >= maxCount { break }
            loadNode(candidate.slot, context, .scratch)
            let good = kept.withUnsafeBufferPointer { keptSlots -> Bool in
                guard let keptBase = keptSlots.baseAddress else { return true }
                walkDistances(context, .scratch, keptBase, keptSlots.count, context.distances)
                for index in 0..<keptSlots.count where context.distances[index] < candidate.distance { return false }
                return true
            }
            if good { kept.append(candidate.slot) }
        }
        return kept
    }

    private func addBacklink(from neighbor: UInt32, to slot: UInt32, level: Int, _ context: SearchContext) {
        precondition(levelOf(neighbor) >= level, "slot \(neighbor) of level \(levelOf(neighbor)) linked on level \(level)")
        let block = list(neighbor, level: level)
        let limit = capacity(level: level)
        for _ in 0..<1_000_000 {  // each retry means another writer made progress
            var version: UInt32 = 0
            let count = Int(sx_list_read(block, UInt32(limit), context.neighbors, &version))
            for index in 0..<count where context.neighbors[index] == slot { return }
            var updated: [UInt32]
            if count < limit {
                updated = Array(UnsafeBufferPointer(start: context.neighbors, count: count))
                updated.append(slot)
            } else {
                context.neighbors[count] = slot
                loadNode(neighbor, context, .query)
                walkDistances(context, .query, context.neighbors, count + 1, context.distances)
                var candidates = (0...count).map { SearchHit(slot: context.neighbors[$0], distance: context.distances[$0]) }
                candidates.sort { $0.distance < $1.distance }
                updated = selectNeighbors(candidates, maxCount: limit, context)
            }
            let published = updated.withUnsafeBufferPointer {
                sx_list_publish(block, version, $0.baseAddress, UInt32($0.count))
            }
            if published { return }
        }
        preconditionFailure("neighbour list of \(neighbor) never settled")
    }

    // MARK: - Search

    /// Which of a context's two query buffers a distance is measured from.
    private enum Side { case query, scratch }

    /// Distances the walk uses, from a prepared query to `count` slots: the
    /// codes' when the layout quantizes, the float16 vectors' otherwise.
    @inline(__always)
    private func walkDistances(_ context: SearchContext, _ side: Side, _ slots: UnsafePointer<UInt32>, _ count: Int,
                               _ out: UnsafeMutablePointer<Float>) {
        if let codeBook {
            codeBook.distances(sq8: side == .query ? context.querySQ8 : context.scratchSQ8,
                               bits: side == .query ? context.queryBits : context.scratchBits, slots, count, out)
        } else {
            kernels.batchHalf(side == .query ? context.query : context.scratch, vectors, stride, slots, count, padded,
                              metricCode, out)
        }
    }

    /// Makes a stored node the query on `side`: its code when the layout
    /// quantizes (its float16 vector may not be resident), else its vector.
    @inline(__always)
    private func loadNode(_ slot: UInt32, _ context: SearchContext, _ side: Side) {
        let floats = side == .query ? context.query : context.scratch
        if let codeBook {
            codeBook.prepare(slot: slot, sq8: side == .query ? context.querySQ8 : context.scratchSQ8,
                             bits: side == .query ? context.queryBits : context.scratchBits, scratch: floats)
        } else {
            HalfConversion.toFloat(vector(slot), floats, count: padded)
        }
    }

    @inline(__always)
    private func distance(_ context: SearchContext, to slot: UInt32) -> Float {
        var target = slot
        var result: Float = 0
        walkDistances(context, .query, &target, 1, &result)
        return result
    }

    private func greedy(_ context: SearchContext, _ current: inout UInt32, _ currentDistance: inout Float, level: Int) {
        let limit = UInt32(capacity(level: level))
        var changed = true
        while changed {
            changed = false
            let count = Int(sx_list_read(list(current, level: level), limit, context.neighbors, nil))
            if count == 0 { break }
            walkDistances(context, .query, context.neighbors, count, context.distances)
            for index in 0..<count where context.distances[index] < currentDistance {
                currentDistance = context.distances[index]
                current = context.neighbors[index]
                changed = true
            }
        }
    }

    @inline(__always)
    private func prefetchList(_ slot: UInt32, level: Int) {
        let block = UnsafeRawPointer(list(slot, level: level))
        var offset = 0
        while offset < (level == 0 ? layout.level0StrideWords : layout.upperStrideWords) * 4 {
            sx_prefetch(block + offset)
            offset += 64
        }
    }

    @inline(__always)
    private func accepted(_ slot: UInt32, _ filter: SlotFilter?) -> Bool {
        guard flags(slot) & (Self.flagPresent | Self.flagDeleted) == Self.flagPresent else { return false }
        guard let filter else { return true }
        return filter.matches(slot)
    }

    /// Best-first search on one level; leaves up to `ef` accepted nodes in
    /// `context.results`. Nodes the filter rejects still route the search.
    @discardableResult
    private func searchLayer(
        _ context: SearchContext, entry: UInt32, entryDistance: Float, ef: Int, level: Int, filter: SlotFilter?,
        forConstruction: Bool
    ) -> Int {
        context.beginVisit(slotCount: slotHighWater)
        _ = context.visit(entry)
        context.candidates.push(entryDistance, entry)
        let entryAccepted =
            forConstruction ? flags(entry) & Self.flagDeleted == 0 : accepted(entry, filter)
        if entryAccepted { context.results.push(entryDistance, entry) }
        var lowerBound = entryAccepted ? entryDistance : Float.infinity
        let limit = UInt32(capacity(level: level))
        // Reached nodes are always present; without deletions or a filter every one
        // is a result, and the node table (a likely cache miss) need not be read.
        let acceptEverything = filter == nil && (forConstruction || deletedCount == 0)
        var computed = 1
        while !context.candidates.isEmpty {
            let candidateDistance = context.candidates.topDistance
            if candidateDistance > lowerBound && context.results.count >= ef { break }
            let candidate = context.candidates.topSlot
            context.candidates.pop()
            // The next node to expand is probably the new top: start loading its list now.
            if !context.candidates.isEmpty { prefetchList(context.candidates.topSlot, level: level) }
            let count = Int(sx_list_read(list(candidate, level: level), limit, context.neighbors, nil))
            var fresh = 0
            for index in 0..<count {
                let neighbor = context.neighbors[index]
                if context.visit(neighbor) {
                    context.unvisited[fresh] = neighbor
                    fresh += 1
                }
            }
            if fresh == 0 { continue }
            walkDistances(context, .query, context.unvisited, fresh, context.distances)
            computed += fresh
            for index in 0..<fresh {
                let neighborDistance = context.distances[index]
                guard context.results.count < ef || neighborDistance < lowerBound else { continue }
                let neighbor = context.unvisited[index]
                context.candidates.push(neighborDistance, neighbor)
                let ok =
                    acceptEverything
                    || (forConstruction ? flags(neighbor) & Self.flagDeleted == 0 : accepted(neighbor, filter))
                if ok {
                    context.results.push(neighborDistance, neighbor)
                    if context.results.count > ef { context.results.pop() }
                    lowerBound = context.results.topDistance
                }
            }
        }
        return computed
    }

    /// Candidates ranked exactly after a quantized walk unless the caller says:
    /// int8 codes order a walk's best candidates almost exactly, so the true
    /// top 10 sit within the first 16 of them (1M scaled debian-minilm: the
    /// same recall at every ef from 16 candidates up, 15% more QPS at ef 192
    /// than ranking all ef; `sextant bench ann --rerank`). Three times k with a
    /// floor of 32 leaves a margin for codes fitted on a shifted distribution.
    /// Sign codes order candidates only coarsely (ranking 32 of them caps
    /// recall@10 near 0.82 on debian-minilm): every candidate the walk kept is ranked.
    public static func defaultRerankCount(k: Int, ef: Int, quantization: Quantization = .int8) -> Int {
        quantization == .bits1 ? max(k, ef) : min(ef, max(3 * k, 32))
    }

    /// k nearest live slots to `query`. `ef` defaults to the index's parameter
    /// and is raised to k. With a filter, the result holds min(k, matches)
    /// slots: when the graph walk finds fewer, an exact scan answers instead.
    /// A quantized layout walks its codes and ranks the best `rerank`
    /// candidates (default: `defaultRerankCount`) exactly against float16.
    public func search(
        _ query: UnsafeBufferPointer<Float>, k: Int, ef: Int? = nil, filter: SlotFilter? = nil,
        strategy: SearchStrategy = .auto, rerank: Int? = nil
    ) throws(IndexError) -> SearchOutcome {
        guard query.count == layout.dimensions else {
            throw .dimensionMismatch(expected: layout.dimensions, actual: query.count)
        }
        guard (1...Self.maximumK).contains(k) else { throw .invalidParameter("k must be in 1...\(Self.maximumK)") }
        guard VectorMath.isFinite(query) else { throw .nonFiniteVector }
        let effectiveEf = max(ef ?? layout.parameters.ef, k)
        guard HNSWParameters.efRange.contains(effectiveEf) else {
            throw .invalidParameter("ef must be in \(HNSWParameters.efRange)")
        }
        let token = gate.enter()
        defer { gate.exit(token) }
        // Candidates a quantized walk hands to the exact ranking.
        let candidates = codeBook == nil
            ? k : max(k, rerank ?? Self.defaultRerankCount(k: k, ef: effectiveEf, quantization: layout.quantization))
        return contexts.withContext(slotCount: slotHighWater) { context in
            layout.prepare(query, into: context.query)
            codeBook?.prepare(context.query, sq8: context.querySQ8, bits: context.queryBits)
            if planExact(strategy: strategy, filter: filter, k: k, ef: effectiveEf) {
                return finished(exactScan(context, k: k, filter: filter, rerankCount: max(candidates, 4 * k, 64)), k: k, context)
            }
            let entry = load(.entry)
            if entry == 0 { return SearchOutcome(hits: [], usedExactScan: false, distanceComputations: 0) }
            var current = UInt32(truncatingIfNeeded: entry)
            var currentDistance = distance(context, to: current)
            var level = Int(entry >> 32) - 1
            while level > 0 {
                greedy(context, &current, &currentDistance, level: level)
                level -= 1
            }
            let computed = searchLayer(
                context, entry: current, entryDistance: currentDistance, ef: effectiveEf, level: 0, filter: filter,
                forConstruction: false)
            var hits = context.results.drainAscending()
            if hits.count > candidates { hits.removeLast(hits.count - candidates) }
            if strategy == .auto && hits.count < min(k, liveCount) {
                var exact = exactScan(context, k: k, filter: filter, rerankCount: max(candidates, 4 * k, 64))
                exact.distanceComputations += computed
                return finished(exact, k: k, context)
            }
            return finished(SearchOutcome(hits: hits, usedExactScan: false, distanceComputations: computed), k: k, context)
        }
    }

    /// The best k of an outcome: ranked exactly against float16 when the walk
    /// measured codes (`context.query` still holds the float query).
    private func finished(_ outcome: SearchOutcome, k: Int, _ context: SearchContext) -> SearchOutcome {
        var result = outcome
        if codeBook != nil && !outcome.usedExactScan {
            result.hits = rerank(outcome.hits, context)
            result.distanceComputations += outcome.hits.count
        }
        if result.hits.count > k { result.hits.removeLast(result.hits.count - k) }
        return result
    }

    /// Exact float16 distances for approximate hits, best first. The
    /// candidates' pages are advised together before the first is read, so a
    /// cold vectors file costs one wait for the slowest page, not one per page.
    private func rerank(_ hits: [SearchHit], _ context: SearchContext) -> [SearchHit] {
        var exact: [SearchHit] = []
        exact.reserveCapacity(hits.count)
        var start = 0
        while start < hits.count {
            let count = min(context.batchCapacity, hits.count - start)
            for index in 0..<count {
                let slot = hits[start + index].slot
                context.unvisited[index] = slot
                regions.vectors.adviseWillNeed(Int(slot) * layout.vectorStrideBytes, layout.vectorStrideBytes)
            }
            kernels.batchHalf(context.query, vectors, stride, context.unvisited, count, padded, metricCode, context.distances)
            for index in 0..<count { exact.append(SearchHit(slot: context.unvisited[index], distance: context.distances[index])) }
            start += count
        }
        exact.sort { $0.distance < $1.distance }
        return exact
    }

    public func search(_ query: [Float], k: Int, ef: Int? = nil, filter: SlotFilter? = nil,
                       strategy: SearchStrategy = .auto, rerank: Int? = nil) throws(IndexError) -> SearchOutcome {
        try query.withUnsafeBufferPointer { (buffer) throws(IndexError) in
            try search(buffer, k: k, ef: ef, filter: filter, strategy: strategy, rerank: rerank)
        }
    }

    /// Exact distances from `query` to an explicit list of slots whose vectors were
    /// written (linked or not), best `k` first. The graph's flags are not consulted:
    /// the caller says which slots count (the storage layer's unindexed tail).
    public func scan(_ query: UnsafeBufferPointer<Float>, slots: [UInt32], k: Int,
                     accept: ((UInt32) -> Bool)? = nil) throws(IndexError) -> [SearchHit] {
        guard query.count == layout.dimensions else {
            throw .dimensionMismatch(expected: layout.dimensions, actual: query.count)
        }
        guard k >= 1 else { throw .invalidParameter("k must be at least 1") }
        guard !slots.isEmpty else { return [] }
        return contexts.withContext(slotCount: slotHighWater) { context in
            layout.prepare(query, into: context.query)
            context.results.removeAll()
            let highWater = UInt32(slotHighWater)
            var start = 0
            while start < slots.count {
                var pending = 0
                while start < slots.count && pending < context.batchCapacity {
                    let slot = slots[start]
                    start += 1
                    guard slot < highWater, accept?(slot) ?? true else { continue }
                    context.unvisited[pending] = slot
                    pending += 1
                }
                keepNearest(context, pending, k: k, exact: true)
            }
            return context.results.drainAscending()
        }
    }

    /// The stored (f16) vector of a slot as float32, into `out` (dimensions long).
    public func readVector(_ slot: UInt32, into out: UnsafeMutableBufferPointer<Float>) {
        guard let base = out.baseAddress, out.count >= layout.dimensions else { return }
        let version = info(slot) + NodeEntry.vectorVersion
        while true {  // a `moveVector` in progress holds the version odd
            let before = sx_load_acquire_u8(version)
            HalfConversion.toFloat(vector(slot), base, count: layout.dimensions)
            if before & 1 == 0 && sx_load_acquire_u8(version) == before { return }
            sched_yield()
        }
    }

    /// True once `link` or `insert` has put the slot in the graph (deleted or not).
    public func isLinked(_ slot: UInt32) -> Bool {
        Int(slot) < slotHighWater && flags(slot) & Self.flagPresent != 0
    }

    /// Chooses between a graph walk and an exact scan by estimated cost, in units
    /// of one sequentially-read distance. A graph walk computes about 16·ef
    /// distances (measured on debian-minilm: 904 at ef 64), each a random access
    /// (≈3× a sequential one), and every node it reaches but cannot return (a
    /// tombstone, a filtered-out record) still costs: the walk goes on until it
    /// has ef results, so its cost grows as 1/selectivity. An exact scan computes
    /// one distance per match and checks every slot's flags (and the filter).
    private func planExact(strategy: SearchStrategy, filter: SlotFilter?, k: Int, ef: Int) -> Bool {
        switch strategy {
        case .exact: return true
        case .graph: return false
        case .auto:
            let live = liveCount
            if live <= Self.exactScanLiveLimit { return true }
            let expected = filter.map { $0.estimatedMatches ?? estimateMatches($0, live: live) } ?? live
            if filter != nil && expected <= max(Self.exactScanMatchLimit, k) { return true }
            let total = Double(live + deletedCount)
            let selectivity = max(Double(expected), 1) / max(total, 1)
            let graphCost = 3 * 16 * Double(max(ef, k)) / selectivity
            let hasCandidates = filter?.hasCandidates == true
            let perSlotCheck = filter == nil ? 0.05 : (hasCandidates ? 0 : 0.5)
            // Per match, in the walk's units (a graph distance is 3): measured on
            // host V at 40,000-1,000,000 records (`sextant bench filtered`), a
            // float16 match costs about 3.5 (113-134 ns beside 107 ns per walk
            // distance), an int8 code about 1.2 (33-53 ns); 1-bit codes less.
            let coded = codeBook != nil && expected > Self.codedScanMinimum
            let perMatch = coded ? (layout.quantization == .bits1 ? 0.6 : 1.2) : 3.5
            let exactCost = Double(expected) * perMatch + (hasCandidates ? Double(expected) * 0.1 : total * perSlotCheck)
            return exactCost < graphCost
        }
    }

    /// Selectivity from a fixed sample of slots spread over the whole range.
    private func estimateMatches(_ filter: SlotFilter, live: Int) -> Int {
        let highWater = slotHighWater
        let samples = min(512, highWater)
        guard samples > 0 else { return 0 }
        var seen = 0
        var matched = 0
        for index in 0..<samples {
            let slot = UInt32(index * highWater / samples)
            guard accepted(slot, nil) else { continue }
            seen += 1
            if filter.matches(slot) { matched += 1 }
        }
        guard seen > 0 else { return 0 }
        return live * matched / seen
    }

    /// Scores the first `count` slots of `context.unvisited` and keeps the `k`
    /// nearest seen so far in `context.results` (the top-k loop of every scan):
    /// exactly against float16, or by the walk's measure.
    @inline(__always)
    private func keepNearest(_ context: SearchContext, _ count: Int, k: Int, exact: Bool) {
        guard count > 0 else { return }
        if exact {
            kernels.batchHalf(context.query, vectors, stride, context.unvisited, count, padded, metricCode, context.distances)
        } else {
            walkDistances(context, .query, context.unvisited, count, context.distances)
        }
        for index in 0..<count {
            let distance = context.distances[index]
            if context.results.count < k {
                context.results.push(distance, context.unvisited[index])
            } else if distance < context.results.topDistance {
                context.results.pop()
                context.results.push(distance, context.unvisited[index])
            }
        }
        assert(context.results.count <= k, "the result heap holds at most k")
    }

    /// A scan of every accepted slot (or of the filter's listed candidates).
    /// Up to `codedScanMinimum` slots it measures float16 and is exact: it
    /// serves small collections and selective filters, whose answers are
    /// promised exact. A larger scan (a filter matching tens of thousands)
    /// measures the compact codes, a fraction of the bytes, and ranks its
    /// best `rerankCount` against float16, as the graph walk does.
    private func exactScan(_ context: SearchContext, k: Int, filter: SlotFilter?, rerankCount: Int = 0) -> SearchOutcome {
        context.results.removeAll()
        let listed = filter?.candidateList?()
        let scanned = listed?.count ?? slotHighWater
        let coded = codeBook != nil && scanned > Self.codedScanMinimum && rerankCount > k
        let kept = coded ? rerankCount : k
        var pending = 0
        var computed = 0
        func flush() {
            keepNearest(context, pending, k: kept, exact: !coded)
            computed += pending
            pending = 0
        }
        func consider(_ slot: UInt32) {
            if listed != nil {
                guard flags(slot) & (Self.flagPresent | Self.flagDeleted) == Self.flagPresent, filter?.candidateMatches(slot) != false else { return }
            } else {
                guard accepted(slot, filter) else { return }
            }
            context.unvisited[pending] = slot
            pending += 1
            if pending == context.batchCapacity { flush() }
        }
        let highWater = UInt32(slotHighWater)
        if let candidates = listed {
            for slot in candidates where slot < highWater { consider(slot) }
        } else {
            var slot: UInt32 = 0
            while slot < highWater {
                consider(slot)
                slot += 1
            }
        }
        flush()
        var hits = context.results.drainAscending()
        if coded {
            hits = rerank(hits, context)
            computed += hits.count
        }
        return SearchOutcome(hits: hits, usedExactScan: true, distanceComputations: computed)
    }

    /// Slots above which a scan measures codes first (`exactScan`).
    static let codedScanMinimum = 2_048

    // MARK: - Delete and reclaim

    /// Tombstones a slot: it keeps routing searches but never appears in results.
    /// Returns false if the slot held no live vector.
    @discardableResult
    public func markDeleted(_ slot: UInt32) -> Bool {
        guard Int(slot) < slotHighWater else { return false }
        let previous = sx_fetch_or_u8(info(slot) + NodeEntry.flags, Self.flagDeleted)
        guard previous & (Self.flagPresent | Self.flagDeleted) == Self.flagPresent else {
            if previous & Self.flagPresent == 0 { setFlags(slot, previous) }
            return false
        }
        add(.live, -1)
        add(.deleted, 1)
        return true
    }

    /// Unlinks every tombstoned node (repairing the lists that pointed to it
    /// from its own neighbours), waits out a grace period, and returns the
    /// slots, now free for `insert`. Must not run concurrently with `insert`.
    /// `pace` runs between the repairs of two nodes: the caller may pause there
    /// (the storage indexer steps off the CPU while queries run).
    public func reclaimDeleted(pace: () -> Void = {}) -> [UInt32] {
        let highWater = slotHighWater
        var deletedMask = [Bool](repeating: false, count: highWater)
        var deleted: [UInt32] = []
        for slot in 0..<UInt32(highWater) where flags(slot) == Self.flagPresent | Self.flagDeleted {
            deletedMask[Int(slot)] = true
            deleted.append(slot)
        }
        guard !deleted.isEmpty else { return [] }
        contexts.withContext(slotCount: highWater) { context in
            // Every other present node, including those a writer deletes while this
            // runs (writers do not wait for upkeep): a list left unrepaired would
            // keep leading to a freed slot, which a new record may reuse on fewer levels.
            for slot in 0..<UInt32(highWater) where !deletedMask[Int(slot)] && flags(slot) & Self.flagPresent != 0 {
                for level in 0...levelOf(slot) { repair(slot, level: level, deletedMask, context) }
                pace()
            }
        }
        replaceEntryIfDeleted(deletedMask)
        gate.synchronize()
        for slot in deleted {
            setFlags(slot, 0)
            add(.deleted, -1)
        }
        return deleted
    }

    private func repair(_ slot: UInt32, level: Int, _ deleted: [Bool], _ context: SearchContext) {
        let block = list(slot, level: level)
        let limit = capacity(level: level)
        var version: UInt32 = 0
        let count = Int(sx_list_read(block, UInt32(limit), context.neighbors, &version))
        let current = Array(UnsafeBufferPointer(start: context.neighbors, count: count))
        guard current.contains(where: { deleted[Int($0)] }) else { return }
        var pool = Set<UInt32>()
        for neighbor in current {
            if !deleted[Int(neighbor)] {
                pool.insert(neighbor)
                continue
            }
            guard level <= levelOf(neighbor) else { continue }
            let inherited = Int(sx_list_read(list(neighbor, level: level), UInt32(limit), context.unvisited, nil))
            for index in 0..<inherited {
                let candidate = context.unvisited[index]
                if candidate != slot && !deleted[Int(candidate)] { pool.insert(candidate) }
            }
        }
        let candidateSlots = Array(pool)
        loadNode(slot, context, .query)
        var hits = [SearchHit]()
        hits.reserveCapacity(candidateSlots.count)
        candidateSlots.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            var start = 0
            while start < buffer.count {
                let chunk = min(context.batchCapacity, buffer.count - start)
                walkDistances(context, .query, base + start, chunk, context.distances)
                for index in 0..<chunk { hits.append(SearchHit(slot: buffer[start + index], distance: context.distances[index])) }
                start += chunk
            }
        }
        hits.sort { $0.distance < $1.distance }
        let kept = selectNeighbors(hits, maxCount: limit, context)
        let ok = kept.withUnsafeBufferPointer { sx_list_publish(block, version, $0.baseAddress, UInt32($0.count)) }
        precondition(ok, "repair runs with inserts paused")
    }

    private func replaceEntryIfDeleted(_ deleted: [Bool]) {
        entryLock.withLock { _ in
            let entry = load(.entry)
            guard entry != 0, deleted[Int(UInt32(truncatingIfNeeded: entry))] else { return }
            var best: UInt32? = nil
            var bestLevel = -1
            for slot in 0..<UInt32(deleted.count) where flags(slot) == Self.flagPresent && levelOf(slot) > bestLevel {
                best = slot
                bestLevel = levelOf(slot)
            }
            if let best {
                store(.entry, (UInt64(bestLevel + 1) << 32) | UInt64(best))
            } else {
                store(.entry, 0)
            }
        }
    }

    // MARK: - Connectivity

    /// Heuristic pruning of back-links can leave a node with no incoming link on
    /// level 0 (hnswlib has the same hole); such a node is never found. This pass
    /// finds them by a breadth-first walk from the entry point and links each one
    /// from its nearest reachable node, evicting there only a link whose target
    /// has other incoming links. Returns how many nodes it reconnected. Runs in
    /// O(slots × 2M) plus one search per orphan; must not overlap `insert`.
    @discardableResult
    public func repairConnectivity(pace: () -> Void = {}) -> Int {
        // A repair may evict a link whose target looked reachable another way
        // through a node that is itself cut off; another round finds such a node.
        var total = 0
        for _ in 0..<Self.repairRounds {
            let repaired = repairConnectivityOnce(pace: pace)
            total += repaired
            if repaired == 0 { break }
        }
        return total
    }

    private static let repairRounds = 4

    private func repairConnectivityOnce(pace: () -> Void) -> Int {
        let entry = load(.entry)
        guard entry != 0 else { return 0 }
        let highWater = slotHighWater
        let limit = layout.maxNeighborsLevel0
        var inDegree = [UInt32](repeating: 0, count: highWater)
        var reached = [Bool](repeating: false, count: highWater)
        var buffer = [UInt32](repeating: 0, count: limit + 1)
        for slot in 0..<UInt32(highWater) where flags(slot) & Self.flagPresent != 0 {
            if slot & 255 == 0 { pace() }
            let count = readList(slot, level: 0, into: &buffer)
            for neighbor in buffer.prefix(count) where Int(neighbor) < highWater { inDegree[Int(neighbor)] += 1 }
        }
        markReachable(from: UInt32(truncatingIfNeeded: entry), &reached, &buffer, pace)
        var repaired = 0
        for orphan in 0..<UInt32(highWater) where flags(orphan) == Self.flagPresent && !reached[Int(orphan)] {
            pace()
            guard linkFromNearestReachable(orphan, &reached, &inDegree) else { continue }
            markReachable(from: orphan, &reached, &buffer, pace)
            repaired += 1
        }
        return repaired
    }

    /// A node's neighbours on one level (`sextant check`, tests).
    public func neighbors(of slot: UInt32, level: Int) -> [UInt32] {
        guard Int(slot) < slotHighWater, flags(slot) & Self.flagPresent != 0, level <= levelOf(slot) else { return [] }
        var buffer = [UInt32](repeating: 0, count: capacity(level: level) + 1)
        let count = readList(slot, level: level, into: &buffer)
        return Array(buffer.prefix(count))
    }

    private func readList(_ slot: UInt32, level: Int, into buffer: inout [UInt32]) -> Int {
        let limit = capacity(level: level)
        return buffer.withUnsafeMutableBufferPointer {
            Int(sx_list_read(list(slot, level: level), UInt32(limit), $0.baseAddress, nil))
        }
    }

    private func markReachable(from start: UInt32, _ reached: inout [Bool], _ buffer: inout [UInt32], _ pace: () -> Void) {
        guard !reached[Int(start)] else { return }
        reached[Int(start)] = true
        var stack = [start]
        var visited = 0
        while let slot = stack.popLast() {
            visited &+= 1
            if visited & 255 == 0 { pace() }
            let count = readList(slot, level: 0, into: &buffer)
            for neighbor in buffer.prefix(count) where Int(neighbor) < reached.count && !reached[Int(neighbor)] {
                reached[Int(neighbor)] = true
                stack.append(neighbor)
            }
        }
    }

    private func linkFromNearestReachable(
        _ orphan: UInt32, _ reached: inout [Bool], _ inDegree: inout [UInt32]
    ) -> Bool {
        contexts.withContext(slotCount: reached.count) { context -> Bool in
            loadNode(orphan, context, .query)
            // Hosts must be reachable and near the orphan. The usual descent
            // through the upper levels lands near it; a level-0 walk from there that
            // accepts only reached nodes finds hosts in its neighbourhood. When the
            // descent ends inside a cut-off part that reaches nothing, a level-0 walk
            // from the entry (which stays inside what the entry reaches) does; an
            // exact scan of the reached set, a million distances per orphan at
            // scale, is the last resort.
            let entryWord = load(.entry)
            let entry = UInt32(truncatingIfNeeded: entryWord)
            let hosts = reached.withUnsafeBufferPointer { isReached -> [SearchHit] in
                let filter = SlotFilter { isReached[Int($0)] }
                var current = entry
                var currentDistance = distance(context, to: entry)
                var level = Int(entryWord >> 32) - 1
                while level > 0 {
                    greedy(context, &current, &currentDistance, level: level)
                    level -= 1
                }
                for (start, startDistance) in [(current, currentDistance), (entry, distance(context, to: entry))]
                where start == entry || current != entry {
                    searchLayer(context, entry: start, entryDistance: startDistance,
                                ef: layout.parameters.efConstruction, level: 0, filter: filter, forConstruction: false)
                    let found = context.results.drainAscending()
                    if !found.isEmpty { return found }
                }
                return exactScan(context, k: layout.parameters.efConstruction, filter: filter).hits
            }
            let limit = layout.maxNeighborsLevel0
            for host in hosts where host.slot != orphan && reached[Int(host.slot)] {
                let block = list(host.slot, level: 0)
                var version: UInt32 = 0
                let count = Int(sx_list_read(block, UInt32(limit), context.neighbors, &version))
                var links = Array(UnsafeBufferPointer(start: context.neighbors, count: count))
                if links.contains(orphan) { return true }
                if count < limit {
                    links.append(orphan)
                } else {
                    // Evict the farthest link whose target stays reachable through another link.
                    loadNode(host.slot, context, .scratch)
                    walkDistances(context, .scratch, context.neighbors, count, context.distances)
                    let evictable = (0..<count).filter { inDegree[Int(links[$0])] > 1 }
                    guard let victim = evictable.max(by: { context.distances[$0] < context.distances[$1] }) else { continue }
                    inDegree[Int(links[victim])] -= 1
                    links[victim] = orphan
                }
                let ok = links.withUnsafeBufferPointer { sx_list_publish(block, version, $0.baseAddress, UInt32($0.count)) }
                guard ok else { continue }
                inDegree[Int(orphan)] += 1
                return true
            }
            return false
        }
    }

    /// Removes `target` from every level-0 list that links to it, as heuristic
    /// back-link pruning can; returns how many lists changed. The node becomes
    /// an orphan until `repairConnectivity` runs (which is how its test makes
    /// one). Must not overlap `insert`.
    package func removeIncomingLinks(to target: UInt32) -> Int {
        let limit = layout.maxNeighborsLevel0
        var buffer = [UInt32](repeating: 0, count: limit + 1)
        var changed = 0
        for slot in 0..<UInt32(slotHighWater) where slot != target && flags(slot) & Self.flagPresent != 0 {
            let block = list(slot, level: 0)
            var version: UInt32 = 0
            let count = buffer.withUnsafeMutableBufferPointer { Int(sx_list_read(block, UInt32(limit), $0.baseAddress, &version)) }
            let kept = buffer.prefix(count).filter { $0 != target }
            guard kept.count < count else { continue }
            let ok = kept.withUnsafeBufferPointer { sx_list_publish(block, version, $0.baseAddress, UInt32($0.count)) }
            precondition(ok, "no insert runs while links are removed")
            changed += 1
        }
        return changed
    }

    // MARK: - Locality

    /// A depth-first order of the level-0 graph from the entry point, nearest
    /// link first, then every slot it did not reach, in slot order:
    /// `order[new] = old`. Numbered this way a node's nearest neighbour usually
    /// gets the next slot and a cluster of similar records a run of slots, so
    /// the codes and lists a walk reads land on nearby pages. Measured on the
    /// same 1M-record graph before and after (`sextant bench ann
    /// --locality-order compare`); the gain grows with how clustered the data is.
    public func localityOrder() -> [UInt32] {
        let highWater = slotHighWater
        var order: [UInt32] = []
        order.reserveCapacity(highWater)
        var placed = [Bool](repeating: false, count: highWater)
        var buffer = [UInt32](repeating: 0, count: layout.maxNeighborsLevel0 + 1)
        let entry = load(.entry)
        if entry != 0 {
            // Frames of (node, next link to try): the stack holds at most one
            // frame per node, where a stack of pending links could hold 2M per node.
            let start = UInt32(truncatingIfNeeded: entry)
            placed[Int(start)] = true
            order.append(start)
            var stack: [(slot: UInt32, next: Int)] = [(start, 0)]
            while let top = stack.last {
                let count = readList(top.slot, level: 0, into: &buffer)
                var next = top.next
                // Lists keep their nearest links first, so the nearest unplaced one goes next.
                while next < count && (Int(buffer[next]) >= highWater || placed[Int(buffer[next])]) { next += 1 }
                if next == count {
                    stack.removeLast()
                    continue
                }
                let neighbor = buffer[next]
                stack[stack.count - 1].next = next + 1
                placed[Int(neighbor)] = true
                order.append(neighbor)
                stack.append((neighbor, 0))
            }
        }
        for slot in 0..<UInt32(highWater) where !placed[Int(slot)] { order.append(slot) }
        assert(order.count == highWater, "every slot placed once")
        return order
    }

    /// Renumbers slots in place: afterwards slot `n` holds what slot
    /// `order[n]` held, with every list and the entry point rewritten to match.
    /// Fixed-stride records move by following the permutation's cycles, so the
    /// only extra memory is the inverse map and one record. The index must be
    /// quiescent (no insert, link or reclaim running). Without
    /// `movingVectors` the float16 vectors stay where they are: a caller whose
    /// vectors live in a file writes them in the new order itself.
    public func renumber(_ order: [UInt32], movingVectors: Bool = true) throws(IndexError) {
        let highWater = slotHighWater
        guard order.count == highWater else {
            throw .invalidParameter("a renumbering names all \(highWater) slots, got \(order.count)")
        }
        var inverse = [UInt32](repeating: UInt32.max, count: highWater)
        for (new, old) in order.enumerated() {
            guard Int(old) < highWater, inverse[Int(old)] == UInt32.max else {
                throw .invalidParameter("a renumbering names every slot exactly once")
            }
            inverse[Int(old)] = UInt32(new)
        }
        func permute(_ region: MemoryRegion, strideBytes: Int) {
            guard strideBytes > 0 else { return }
            let base = region.base
            let held = UnsafeMutableRawPointer.allocate(byteCount: strideBytes, alignment: 64)
            defer { held.deallocate() }
            var placed = [Bool](repeating: false, count: highWater)
            for start in 0..<highWater where !placed[start] {
                placed[start] = true
                if Int(order[start]) == start { continue }
                held.copyMemory(from: base + start * strideBytes, byteCount: strideBytes)
                var position = start
                while true {
                    let source = Int(order[position])
                    if source == start {
                        (base + position * strideBytes).copyMemory(from: held, byteCount: strideBytes)
                        break
                    }
                    (base + position * strideBytes).copyMemory(from: base + source * strideBytes, byteCount: strideBytes)
                    placed[source] = true
                    position = source
                }
            }
            region.noteWritten(0, highWater * strideBytes)
        }
        if movingVectors { permute(regions.vectors, strideBytes: layout.vectorStrideBytes) }
        if let codes = regions.codes { permute(codes, strideBytes: layout.codeStrideBytes) }
        permute(regions.level0, strideBytes: layout.level0StrideWords * 4)
        // The node table moves with its slots; each entry names its own upper
        // blocks, which therefore stay where they are.
        permute(regions.nodeInfo, strideBytes: HNSWLayout.nodeInfoStrideBytes)
        for slot in 0..<UInt32(highWater) where flags(slot) & Self.flagPresent != 0 {
            for level in 0...levelOf(slot) {
                let block = list(slot, level: level)
                let count = Int(block[1])
                assert(count <= capacity(level: level), "a list holds at most its capacity")
                for index in 0..<count { block[2 + index] = inverse[Int(block[2 + index])] }
            }
        }
        regions.upper.noteWritten(0, Int(load(.upperUsed)) * layout.upperStrideWords * 4)
        let entry = load(.entry)
        if entry != 0 {
            store(.entry, (entry & ~UInt64(UInt32.max)) | UInt64(inverse[Int(UInt32(truncatingIfNeeded: entry))]))
        }
    }

    // MARK: - Invariants (tests and `sextant check`)

    /// Checks the graph's structural invariants; returns one line per violation.
    public func invariantViolations() -> [String] {
        var problems: [String] = []
        let highWater = slotHighWater
        let entry = load(.entry)
        var neighbors = [UInt32](repeating: 0, count: layout.maxNeighborsLevel0)
        for slot in 0..<UInt32(highWater) where flags(slot) & Self.flagPresent != 0 {
            for level in 0...levelOf(slot) {
                let limit = capacity(level: level)
                let block = list(slot, level: level)
                if Int(block[1]) > limit { problems.append("slot \(slot) level \(level): \(block[1]) > \(limit) links") }
                let count = neighbors.withUnsafeMutableBufferPointer {
                    Int(sx_list_read(block, UInt32(limit), $0.baseAddress, nil))
                }
                for neighbor in neighbors.prefix(count) {
                    if neighbor == slot { problems.append("slot \(slot) level \(level) links to itself") }
                    if Int(neighbor) >= highWater || flags(neighbor) & Self.flagPresent == 0 {
                        problems.append("slot \(slot) level \(level) links to absent slot \(neighbor)")
                    } else if levelOf(neighbor) < level {
                        problems.append("slot \(slot) level \(level) links to \(neighbor) of level \(levelOf(neighbor))")
                    }
                }
            }
        }
        var live = 0
        var deleted = 0
        for slot in 0..<UInt32(highWater) where flags(slot) & Self.flagPresent != 0 {
            if flags(slot) & Self.flagDeleted != 0 { deleted += 1 } else { live += 1 }
        }
        if live != liveCount || deleted != deletedCount {
            problems.append("\(live) live and \(deleted) deleted nodes, counted \(liveCount) and \(deletedCount)")
        }
        guard entry != 0 else {
            if liveCount > 0 { problems.append("no entry point but \(liveCount) live nodes") }
            return problems
        }
        let entrySlot = UInt32(truncatingIfNeeded: entry)
        if flags(entrySlot) & Self.flagPresent == 0 || levelOf(entrySlot) != Int(entry >> 32) - 1 {
            problems.append("entry \(entrySlot) of level \(Int(entry >> 32) - 1) is absent or on level \(levelOf(entrySlot))")
        }
        // Every present node must be reachable from the entry point on level 0.
        var seen = [Bool](repeating: false, count: highWater)
        var queue = [UInt32(truncatingIfNeeded: entry)]
        seen[Int(queue[0])] = true
        while let slot = queue.popLast() {
            let count = neighbors.withUnsafeMutableBufferPointer {
                Int(sx_list_read(list(slot, level: 0), UInt32(layout.maxNeighborsLevel0), $0.baseAddress, nil))
            }
            for neighbor in neighbors.prefix(count) where Int(neighbor) < highWater && !seen[Int(neighbor)] {
                seen[Int(neighbor)] = true
                queue.append(neighbor)
            }
        }
        var unreachable = 0
        for slot in 0..<UInt32(highWater) where flags(slot) == Self.flagPresent && !seen[Int(slot)] { unreachable += 1 }
        if unreachable > 0 { problems.append("\(unreachable) live nodes unreachable from the entry point") }
        return problems
    }
}
