import SextantPayload

extension Collection {
    /// Replaces the indexed metadata fields. The index is built from the
    /// records under the writer lock, so that it holds exactly the records the
    /// logged change follows (a pass over the metadata: about a second per
    /// million records, during which writers wait and readers go on with the
    /// old indexes); a crash before the change is durable leaves the
    /// collection as it was, and replay rebuilds the index at the same point.
    public func setPayloadIndexes(_ fields: [String]) async throws {
        try CollectionConfiguration.validatePayloadIndexes(fields)
        try refuseIfFollowing()
        guard !closed.load(ordering: .acquiring) else { throw StorageError.unavailable("collection is closed") }
        guard fields != configuration.payloadIndexes else { return }
        let lsn = try await writerLock.withLock { () async throws -> LSN in
            let generation = current.withLock { $0 }
            let built: PayloadIndex? = fields.isEmpty ? nil : try await Blocking.run(at: indexer?.priority) {
                CollectionPayloadIndexes.build(fields, from: generation)
            }
            return try state.withLock { (state) throws -> LSN in
                var configuration = state.configuration
                configuration.payloadIndexes = fields
                let lsn = try wal.enqueue(kind: EntryKind.configuration, payload: try Self.encoded(configuration))
                state.configuration = configuration
                payload.reset(built)
                return lsn
            }
        }
        unindexedFilterUses.withLock { uses in for field in fields { uses[field] = nil } }
        try await wal.waitDurable(lsn)
    }

    /// Counts a filter that no index answered, by key. A key filtered on
    /// `StorageLimits.automaticPayloadIndexFilterUses` times in a collection
    /// of at least `automaticIndexRecords` records gets an index of its own,
    /// built in the background (one build at a time per collection).
    func noteUnindexedFilter(_ filter: WhereFilter) {
        let threshold = automaticIndexRecords.load(ordering: .relaxed)
        guard threshold > 0, !followsShippedLog.load(ordering: .relaxed) else { return }
        var due: [String] = []
        unindexedFilterUses.withLock { uses in
            for key in filter.keys where !key.hasPrefix("#") {
                guard uses[key] != nil || uses.count < StorageLimits.maximumCountedFilterKeys else { continue }
                uses[key, default: 0] += 1
                if uses[key, default: 0] >= StorageLimits.automaticPayloadIndexFilterUses {
                    due.append(key)
                    uses[key] = 0
                }
            }
        }
        // The live count (under the state lock) is read only when a key is due, not on every query.
        guard !due.isEmpty, count >= threshold else { return }
        let existing = configuration.payloadIndexes
        let added = due.filter { !existing.contains($0) && !payload.indexes($0) }.sorted()
        guard !added.isEmpty, existing.count + added.count <= CollectionConfiguration.maximumPayloadIndexes,
            automaticIndexRunning.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else { return }
        Task.detached(priority: .background) { [self] in
            defer { automaticIndexRunning.store(false, ordering: .releasing) }
            // Re-read: a declared change may have landed since.
            let fields = configuration.payloadIndexes
            let wanted = fields + added.filter { !fields.contains($0) }
            guard wanted.count <= CollectionConfiguration.maximumPayloadIndexes, wanted != fields else { return }
            do {
                try await setPayloadIndexes(wanted)
                StorageLog.write("collection '\(name)': indexed metadata field(s) \(added.joined(separator: ", ")) by themselves after \(StorageLimits.automaticPayloadIndexFilterUses) filters without an index")
            } catch {
                StorageLog.write("collection '\(name)': automatic index of \(added.joined(separator: ", ")) failed: \(error)")
            }
        }
    }
}
