import SextantIndex
import SextantKernels
import SextantPayload
import SextantText

extension Collection {
    // MARK: - Query

    /// Nearest records to each query vector. A filtered query returns the true
    /// top-k among matching records as far as HNSW allows, and never fewer than k
    /// when k match (the planner falls back to an exact scan).
    public func query(
        _ vectors: [[Float]], k: Int, filter: WhereFilter? = nil, documentFilter: DocumentFilter? = nil,
        include: Include = [.documents, .metadatas, .distances], ef: Int? = nil
    ) throws -> [[RecordView]] {
        guard (1...HNSWIndex.maximumK).contains(k) else {
            throw StorageError.invalidArgument("k must be in 1...\(HNSWIndex.maximumK), got \(k)")
        }
        if let ef, !HNSWParameters.efRange.contains(ef) { throw StorageError.invalidArgument("ef must be in \(HNSWParameters.efRange)") }
        do { try FilterValidation.validate(filter, documentFilter) } catch { throw StorageError(error) }
        if isDimensionPending { return vectors.map { _ in [] } }
        tail.noteReader()  // writers now keep the tail this query scans small
        let generation = current.withLock { $0 }
        let token = generation.index.gate.enter()
        defer { generation.index.gate.exit(token) }
        let filtered = filter != nil || documentFilter != nil
        let rankByCode = !filtered && tailCodesRank.load(ordering: .relaxed)
        // Filtered queries are exact over the tail: every matching record counts.
        let snapshot = rankByCode ? nil : tail.snapshot()
        var results: [[RecordView]] = []
        results.reserveCapacity(vectors.count)
        for vector in vectors {
            guard vector.count == layout.dimensions else {
                throw StorageError.invalidArgument("query vector has \(vector.count) dimensions, the collection has \(layout.dimensions)")
            }
            // Taken before the graph search, so a record the indexer links meanwhile is found by one or the other.
            let pending = snapshot ?? tailCandidates(vector, k: k)
            let hits = try nearest(generation, vector, k: k, ef: ef, filter: filter, documentFilter: documentFilter, pending: pending)
            results.append(hits.compactMap { view(generation, $0.slot, include: include, distance: $0.distance) })
        }
        return results
    }

    /// One search by `mode`: semantic (as `query`), lexical (BM25 top-k of
    /// the collection's text index among records matching the filters), or
    /// hybrid (both rankings, `fusionDepth(k)` and `lexicalFusionDepth(k)`
    /// deep, fused by reciprocal rank; records holding the query verbatim
    /// first). Lexical hits carry `score`; hybrid ones `score` and, when the
    /// vector search found them, `distance`.
    public func search(
        mode: SearchMode, vector: [Float]?, text: String?, k: Int, filter: WhereFilter? = nil,
        documentFilter: DocumentFilter? = nil, include: Include = [.documents, .metadatas, .distances], ef: Int? = nil,
        fusion: RankFusion = RankFusion()
    ) throws -> [RecordView] {
        guard (1...HNSWIndex.maximumK).contains(k) else {
            throw StorageError.invalidArgument("k must be in 1...\(HNSWIndex.maximumK), got \(k)")
        }
        if mode != .semantic {
            guard let text, !text.isEmpty else { throw StorageError.invalidArgument("a \(mode.rawValue) search needs query text") }
            guard text.utf8.count <= StorageLimits.maximumQueryTextBytes else {
                throw StorageError.invalidArgument("query text over \(StorageLimits.maximumQueryTextBytes) bytes")
            }
            guard self.text.isEnabled else {
                throw StorageError.failedPrecondition("collection '\(name)' has no text index: enable it to search its documents by words")
            }
        }
        if mode != .lexical, vector == nil {
            throw StorageError.invalidArgument("a \(mode.rawValue) search needs a query vector")
        }
        guard fusion.isValid else { throw StorageError.invalidArgument("fusion k and weights must be finite, non-negative, not all zero") }
        switch mode {
        case .semantic:
            return try query([vector ?? []], k: k, filter: filter, documentFilter: documentFilter, include: include, ef: ef)
                .first ?? []
        case .lexical:
            do { try FilterValidation.validate(filter, documentFilter) } catch { throw StorageError(error) }
            tail.noteReader()
            let generation = current.withLock { $0 }
            let token = generation.index.gate.enter()
            defer { generation.index.gate.exit(token) }
            return lexicalHits(generation, text ?? "", k: k, filter: filter, documentFilter: documentFilter).compactMap { hit in
                var result = view(generation, hit.slot, include: include.subtracting(.distances), distance: nil)
                result?.score = hit.score
                return result
            }
        case .hybrid:
            return try hybrid(vector ?? [], text ?? "", k: k, filter: filter, documentFilter: documentFilter, include: include,
                              ef: ef, fusion: fusion)
        }
    }

    /// Both rankings fused by slot; only the k winners become records, so the
    /// depth of the rankings costs no document or metadata decoding.
    private func hybrid(
        _ vector: [Float], _ text: String, k: Int, filter: WhereFilter?, documentFilter: DocumentFilter?, include: Include,
        ef: Int?, fusion: RankFusion
    ) throws -> [RecordView] {
        if let ef, !HNSWParameters.efRange.contains(ef) { throw StorageError.invalidArgument("ef must be in \(HNSWParameters.efRange)") }
        do { try FilterValidation.validate(filter, documentFilter) } catch { throw StorageError(error) }
        if isDimensionPending { return [] }
        guard vector.count == layout.dimensions else {
            throw StorageError.invalidArgument("query vector has \(vector.count) dimensions, the collection has \(layout.dimensions)")
        }
        tail.noteReader()
        let generation = current.withLock { $0 }
        let token = generation.index.gate.enter()
        defer { generation.index.gate.exit(token) }
        let semanticDepth = Self.fusionDepth(k)
        let filtered = filter != nil || documentFilter != nil
        let pending = !filtered && tailCodesRank.load(ordering: .relaxed) ? tailCandidates(vector, k: semanticDepth) : tail.snapshot()
        let semantic = try nearest(generation, vector, k: semanticDepth, ef: ef.map { max($0, semanticDepth) }, filter: filter,
                                   documentFilter: documentFilter, pending: pending)
        let lexical = lexicalHits(generation, text, k: Self.lexicalFusionDepth(k), filter: filter, documentFilter: documentFilter)

        struct Fused {
            var score: Double
            var distance: Float?
            var firstSeen: Int
        }
        var fused: [UInt32: Fused] = [:]
        fused.reserveCapacity(semantic.count + lexical.count)
        for (rank, hit) in semantic.enumerated() {
            fused[hit.slot] = Fused(score: fusion.contribution(rank: rank, weight: fusion.semanticWeight), distance: hit.distance,
                                    firstSeen: rank)
        }
        for (rank, hit) in lexical.enumerated() {
            let part = fusion.contribution(rank: rank, weight: fusion.lexicalWeight)
            fused[hit.slot, default: Fused(score: 0, distance: nil, firstSeen: semantic.count + rank)].score += part
        }
        // Records holding the query's words verbatim, in order, come first:
        // their bonus is the most any record can get from the rankings.
        if fusion.phraseFirst, let phrase = PhraseMatcher(text) {
            let bonus = (fusion.semanticWeight + fusion.lexicalWeight) / (fusion.k + 1)
            let candidates = Array(fused.keys)
            for (slot, possible) in zip(candidates, self.text.mayHold(text, among: candidates)) where possible {
                if let document = generation.records.record(slot)?.document, phrase.matches(document) { fused[slot]?.score += bonus }
            }
        }
        // Ties go to the record the semantic ranking placed first, then the lexical one.
        let ranked = fused.sorted { $0.value.score > $1.value.score || ($0.value.score == $1.value.score && $0.value.firstSeen < $1.value.firstSeen) }
        var results: [RecordView] = []
        results.reserveCapacity(k)
        for (slot, entry) in ranked where results.count < k {
            // A record upserted meanwhile can sit in two slots (graph and text index): keep its first.
            guard var result = view(generation, slot, include: include, distance: include.contains(.distances) ? entry.distance : nil),
                  !results.contains(where: { $0.id == result.id }) else { continue }
            result.score = entry.score
            results.append(result)
        }
        return results
    }

    /// How deep each ranking goes before fusion: past k, so a record second in
    /// one list and absent from the other's top k can still be found.
    static func fusionDepth(_ k: Int) -> Int { min(HNSWIndex.maximumK, max(2 * k, 50)) }

    /// The lexical side's depth: BM25's top 50 holds the record of 95% of
    /// `sextant bench known-item`'s queries (its top 100: 96%, for 20% more
    /// time per query on the public queries).
    static func lexicalFusionDepth(_ k: Int) -> Int { fusionDepth(k) }

    /// BM25's top k among live records matching the filters, as slots.
    /// Unfiltered, every document in the index is live (deletes leave it in
    /// the same apply), so the slot table is read for the winners only; a
    /// margin covers records retired while the search ran.
    private func lexicalHits(_ generation: Generation, _ query: String, k: Int, filter: WhereFilter?, documentFilter: DocumentFilter?)
        -> [BM25Index.Hit]
    {
        if filter != nil || documentFilter != nil {
            return text.search(query, k: k) { slot in generation.records.matches(slot, filter, documentFilter) }
        }
        return Array(text.searchEverything(query, k: k + Self.lexicalLiveMargin).lazy.filter { generation.records.isLive($0.slot) }.prefix(k))
    }

    static let lexicalLiveMargin = 4

    /// Tail records worth scoring exactly for an unfiltered query: all of them
    /// while the tail is small, else the `tailRerankCount` nearest by sign code.
    private func tailCandidates(_ vector: [Float], k: Int) -> [UInt32] {
        let keep = StorageLimits.tailRerankCount(k: k, tailRecords: tail.count)
        let words = SignCodes.words(dimensions: layout.dimensions)
        let dimensions = layout.dimensions
        let ranked = withUnsafeTemporaryAllocation(of: UInt64.self, capacity: words) { code -> [UInt32]? in
            vector.withUnsafeBufferPointer { query -> [UInt32]? in
                guard let base = code.baseAddress, let floats = query.baseAddress else { return nil }
                SignCodes.encode(floats: floats, dimensions: dimensions, into: base)
                return tail.nearestByCode(base, keep: keep, minimumCount: 2 * keep)
            }
        }
        return ranked ?? tail.snapshot()
    }

    private func nearest(
        _ generation: Generation, _ vector: [Float], k: Int, ef: Int?, filter: WhereFilter?, documentFilter: DocumentFilter?,
        pending: [UInt32]
    ) throws -> [SearchHit] {
        let filtered = filter != nil || documentFilter != nil
        let accept: (UInt32) -> Bool = { slot in
            filtered ? generation.records.matches(slot, filter, documentFilter) : generation.records.isLive(slot)
        }
        var hits: [SearchHit]
        do {
            hits = try vector.withUnsafeBufferPointer { (buffer) throws(IndexError) -> [SearchHit] in
                var found = try generation.index.search(
                    buffer, k: k, ef: ef, filter: filtered ? SlotFilter(matches: accept) : nil).hits
                if filtered {
                    found += try generation.index.scan(buffer, slots: pending, k: k, accept: accept)
                } else {
                    // Score the whole tail first and check liveness only for the winners: the
                    // check is a random read of the slot table, the scan a sequential read of
                    // vectors. A margin covers tail records retired since the snapshot.
                    found += try generation.index.scan(buffer, slots: pending, k: k + 32, accept: nil)
                }
                return found
            }
        } catch { throw StorageError(error) }
        hits.sort { $0.distance < $1.distance }
        // Same slot twice (graph and tail) or two versions of one id (a concurrent
        // upsert): keep the first. k is small, so linear checks beat hashing.
        var result: [SearchHit] = []
        var resultIds: [UnsafeRawBufferPointer] = []
        result.reserveCapacity(k)
        for hit in hits where result.count < k && generation.records.isLive(hit.slot) {
            guard !result.contains(where: { $0.slot == hit.slot }), let record = generation.records.record(hit.slot) else {
                continue
            }
            guard !resultIds.contains(where: { $0.elementsEqual(record.id) }) else { continue }
            result.append(hit)
            resultIds.append(record.id)
        }
        assert(result.count <= k, "never more than k results")
        return result
    }

    // MARK: - Get

    /// Records by id (in the order asked, missing ids skipped) and/or filter,
    /// in slot order otherwise, with offset and limit applied after filtering.
    public func get(
        ids: [String]? = nil, filter: WhereFilter? = nil, documentFilter: DocumentFilter? = nil, offset: Int = 0,
        limit: Int? = nil, include: Include = [.documents, .metadatas]
    ) throws -> [RecordView] {
        guard offset >= 0 else { throw StorageError.invalidArgument("offset must not be negative") }
        if let limit, limit < 0 { throw StorageError.invalidArgument("limit must not be negative") }
        if let ids, ids.count > StorageLimits.maximumBatchRecords {
            throw StorageError.invalidArgument("\(ids.count) ids exceed \(StorageLimits.maximumBatchRecords)")
        }
        do { try FilterValidation.validate(filter, documentFilter) } catch { throw StorageError(error) }
        if isDimensionPending { return [] }
        let generation = current.withLock { $0 }
        let token = generation.index.gate.enter()
        defer { generation.index.gate.exit(token) }
        let candidates: [UInt32]
        if let ids {
            var seen = Set<String>()
            let wanted = ids.filter { seen.insert($0).inserted }
            candidates = state.withLock { state in wanted.compactMap { state.ids[$0] } }
        } else {
            candidates = Array(0..<UInt32(generation.index.slotHighWater))
        }
        var results: [RecordView] = []
        var skipped = 0
        for slot in candidates where generation.records.matches(slot, filter, documentFilter) {
            if let limit, results.count >= limit { break }
            if skipped < offset {
                skipped += 1
                continue
            }
            if let record = view(generation, slot, include: include, distance: nil) { results.append(record) }
        }
        return results
    }

    private func view(_ generation: Generation, _ slot: UInt32, include: Include, distance: Float?) -> RecordView? {
        guard let record = generation.records.record(slot) else { return nil }
        var result = RecordView(id: String(decoding: record.id, as: UTF8.self))
        if include.contains(.documents), let document = record.document {
            result.document = String(decoding: document, as: UTF8.self)
        }
        if include.contains(.metadatas) { result.metadata = try? MetadataCodec.decode(record.metadata) }
        if include.contains(.vectors) {
            var vector = [Float](repeating: 0, count: layout.dimensions)
            vector.withUnsafeMutableBufferPointer { generation.index.readVector(slot, into: $0) }
            result.vector = vector
        }
        if include.contains(.distances) { result.distance = distance }
        return result
    }

    // MARK: - Stats

    public func stats() -> CollectionStats {
        let generation = current.withLock { $0 }
        let snapshot = state.withLock { $0 }
        let used = generation.index.usedBytes
        return CollectionStats(
            liveRecords: snapshot.liveRecords, unindexedRecords: tail.count, indexedRecords: generation.index.liveCount,
            deletedAwaitingReclaim: generation.index.deletedCount + snapshot.limbo.count,
            slotHighWater: generation.index.slotHighWater, lastLSN: wal.lastLSN, durableLSN: wal.durableLSN,
            checkpointLSN: snapshot.checkpointLSN, generation: generation.number, walBytes: wal.bytesSinceCheckpoint,
            diskBytes: Files.treeSize(directory), capacitySlots: generation.index.layout.capacity,
            vectorBytes: used.vectors, graphBytes: used.graph, codeBytes: used.codes,
            heapBytes: generation.records.heapUsedBytes, residentSearchBytes: generation.index.residentSearchBytes)
    }
}
