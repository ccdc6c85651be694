import SextantIndex
import SextantKernels
import SextantPayload

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
        try validateFilters(filter, documentFilter)
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

    /// Tail records worth scoring exactly for an unfiltered query: all of them
    /// while the tail is small, else the `tailRerankCount` nearest by sign code.
    func tailCandidates(_ vector: [Float], k: Int) -> [UInt32] {
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

    func nearest(
        _ generation: Generation, _ vector: [Float], k: Int, ef: Int?, filter: WhereFilter?, documentFilter: DocumentFilter?,
        pending: [UInt32]
    ) throws -> [SearchHit] {
        let filtered = filter != nil || documentFilter != nil
        let accept: (UInt32) -> Bool = { slot in
            filtered ? generation.records.matches(slot, filter, documentFilter) : generation.records.isLive(slot)
        }
        // Indexed fields count the filter's matches (or a superset) exactly: the
        // planner scans them when few, listed only then, and walks the graph otherwise.
        var slotFilter: SlotFilter?
        if filtered {
            if let filter, let count = payload.matchCount(filter) {
                // Listed candidates that are the matches exactly need only the
                // liveness and document checks, not the metadata read again.
                final class ExactFlag { var value = false }
                let exact = ExactFlag()
                let payload = self.payload
                let listed: () -> [UInt32] = {
                    let found = payload.candidates(filter)
                    exact.value = found?.exact ?? false
                    return found?.slots ?? []
                }
                slotFilter = SlotFilter(matchCount: count, candidates: listed, candidateMatches: { slot in
                    guard exact.value else { return generation.records.matches(slot, filter, documentFilter) }
                    // The slot table alone, unless a document condition needs the record.
                    return documentFilter == nil ? generation.records.isLive(slot) : generation.records.matches(slot, nil, documentFilter)
                }, matches: accept)
            } else {
                if let filter { noteUnindexedFilter(filter) }
                slotFilter = SlotFilter(matches: accept)
            }
        }
        var hits: [SearchHit]
        do {
            hits = try vector.withUnsafeBufferPointer { (buffer) throws(IndexError) -> [SearchHit] in
                var found = try generation.index.search(buffer, k: k, ef: ef, filter: slotFilter).hits
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

    /// Checks a read's filters: their shape, and that no condition compares a
    /// field with a type the records never held under it (a `$gt` on text
    /// matches nothing, which users read as "no such records").
    func validateFilters(_ filter: WhereFilter?, _ documentFilter: DocumentFilter?) throws {
        do { try FilterValidation.validate(filter, documentFilter) } catch { throw StorageError(error) }
        if let filter, let problem = filter.typeProblem(fieldTypes.withLock { $0 }) {
            throw StorageError.invalidArgument("where: \(problem)")
        }
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
        try validateFilters(filter, documentFilter)
        if isDimensionPending { return [] }
        let generation = current.withLock { $0 }
        let token = generation.index.gate.enter()
        defer { generation.index.gate.exit(token) }
        let candidates: [UInt32]
        if let ids {
            var seen = Set<String>()
            let wanted = ids.filter { seen.insert($0).inserted }
            candidates = state.withLock { state in wanted.compactMap { state.ids[$0] } }
        } else if let filter, let indexed = payload.candidates(filter) {
            candidates = indexed.slots  // in slot order, as the full range would give them
        } else {
            if let filter { noteUnindexedFilter(filter) }
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

    func view(_ generation: Generation, _ slot: UInt32, include: Include, distance: Float?) -> RecordView? {
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

    // MARK: - Facets

    /// What a metadata field holds among the records matching the filters:
    /// its most common string or boolean values with their counts (most
    /// first, at most `limit`), and for numbers the smallest and largest.
    /// Counted from the field's index when it has one, by reading the
    /// matching records otherwise; exact either way.
    public func facets(field: String, filter: WhereFilter? = nil, documentFilter: DocumentFilter? = nil, limit: Int = 10) throws -> Facets {
        guard (1...Facets.maximumValues).contains(limit) else {
            throw StorageError.invalidArgument("facet limit must be in 1...\(Facets.maximumValues), got \(limit)")
        }
        do {
            try MetadataCodec.validate([field: .bool(true)])
        } catch { throw StorageError(error) }
        try validateFilters(filter, documentFilter)
        let generation = current.withLock { $0 }
        let token = generation.index.gate.enter()
        defer { generation.index.gate.exit(token) }
        let filtered = filter != nil || documentFilter != nil
        var slots: [UInt32]?
        if filtered {
            let indexed = filter.flatMap { payload.candidates($0) }
            if indexed == nil, let filter { noteUnindexedFilter(filter) }
            let range = indexed?.slots ?? Array(0..<UInt32(generation.index.slotHighWater))
            slots = range.filter { generation.records.matches($0, filter, documentFilter) }
        }
        if payload.indexes(field) {
            let matched = slots?.count ?? count
            let values = payload.facet(field, among: slots, limit: limit) ?? []
            let numbers = payload.numberRange(field, among: slots)
            return Facets(field: field, matched: matched, values: values.map { Facets.Value(value: $0.value, count: $0.count) },
                          minimum: numbers?.minimum, maximum: numbers?.maximum, numbers: numbers?.count ?? 0, indexed: true)
        }
        // No index on the field: read it from each matching record.
        var counts: [MetadataValue: Int] = [:]
        var minimum = Double.infinity
        var maximum = -Double.infinity
        var numbers = 0
        var matched = 0
        let range = slots ?? Array(0..<UInt32(generation.index.slotHighWater))
        for slot in range {
            guard generation.records.isLive(slot), let record = generation.records.record(slot) else { continue }
            matched += 1
            switch MetadataCodec.value(of: field, in: record.metadata) {
            case .string(let text)?: counts[.string(text), default: 0] += 1
            case .bool(let flag)?: counts[.bool(flag), default: 0] += 1
            case .int(let number)?:
                minimum = min(minimum, Double(number))
                maximum = max(maximum, Double(number))
                numbers += 1
            case .double(let number)?:
                minimum = min(minimum, number)
                maximum = max(maximum, number)
                numbers += 1
            case .sparseVector?, nil: break
            }
        }
        let values = counts.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key.description < $1.key.description) }
            .prefix(limit).map { Facets.Value(value: $0.key, count: $0.value) }
        return Facets(field: field, matched: matched, values: values, minimum: numbers > 0 ? minimum : nil,
                      maximum: numbers > 0 ? maximum : nil, numbers: numbers, indexed: false)
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
            diskBytes: disk.treeSize(directory), capacitySlots: generation.index.layout.capacity,
            vectorBytes: used.vectors, graphBytes: used.graph, codeBytes: used.codes,
            heapBytes: generation.records.heapUsedBytes, residentSearchBytes: generation.index.residentSearchBytes)
    }
}
