import SextantIndex
import SextantKernels
import SextantPayload
import SextantText

/// Search by mode: lexical (BM25 over the collection's text index) and
/// hybrid (both rankings fused), beside the semantic `query` of
/// `Collection+Read.swift`, whose graph walk and record views they share.
extension Collection {
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
            try validateFilters(filter, documentFilter)
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
        try validateFilters(filter, documentFilter)
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

    /// The exact top `k` records by dot product of their sparse vector under
    /// `key` with `query` (a BM25 key's query values scaled by IDF over the
    /// live records), among records matching the filters. Hits carry `score`,
    /// the dot product; only records sharing a dimension with the query are found.
    public func sparseSearch(
        key: String, query: SparseVector, k: Int, filter: WhereFilter? = nil, documentFilter: DocumentFilter? = nil,
        include: Include = [.documents, .metadatas]
    ) throws -> [RecordView] {
        guard (1...HNSWIndex.maximumK).contains(k) else {
            throw StorageError.invalidArgument("k must be in 1...\(HNSWIndex.maximumK), got \(k)")
        }
        do {
            try query.validate(path: "sparse query")
        } catch { throw StorageError(error) }
        try validateFilters(filter, documentFilter)
        guard configuration.sparseIndexes.contains(where: { $0.key == key }) else {
            let declared = configuration.sparseIndexes.map(\.key)
            throw StorageError.failedPrecondition(
                "collection '\(name)' has no sparse index on '\(key.prefix(60))'" + (declared.isEmpty ? "" : " (it has: \(declared.joined(separator: ", ")))"))
        }
        let liveRecords = count
        let generation = current.withLock { $0 }
        let token = generation.index.gate.enter()
        defer { generation.index.gate.exit(token) }
        let hits: [BM25Index.Hit]
        if filter != nil || documentFilter != nil {
            hits = sparse.search(key: key, query, k: k, liveRecords: liveRecords) { generation.records.matches($0, filter, documentFilter) } ?? []
        } else {
            hits = Array((sparse.search(key: key, query, k: k + Self.lexicalLiveMargin, liveRecords: liveRecords, accept: nil) ?? [])
                .lazy.filter { generation.records.isLive($0.slot) }.prefix(k))
        }
        return hits.compactMap { hit in
            var result = view(generation, hit.slot, include: include.subtracting(.distances), distance: nil)
            result?.score = hit.score
            return result
        }
    }
}
