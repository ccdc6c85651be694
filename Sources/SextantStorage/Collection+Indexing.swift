import SextantConcurrency
import SextantIndex

extension Collection {
    /// Links up to `maximum` tail records into the graph; returns how many it handled.
    @discardableResult
    func indexSome(maximum: Int) -> Int {
        indexLock.withShared {
            let claimed = tail.claim(maximum)
            guard !claimed.isEmpty else { return 0 }
            let generation = current.withLock { $0 }
            var linked = 0
            for (_, slot) in claimed {
                if generation.records.isLive(slot) && !generation.index.isLinked(slot) {
                    do {
                        try generation.index.link(slot: slot)
                        linked += 1
                    } catch {
                        StorageLog.write("indexer: slot \(slot) of \(directory) not linked: \(error)")
                    }
                }
                state.withLock { state in
                    guard !generation.records.isLive(slot) else { return }
                    if generation.index.isLinked(slot) {
                        generation.index.markDeleted(slot)
                    } else if !state.limbo.contains(slot) {
                        state.limbo.append(slot)
                    }
                }
            }
            state.withLock { $0.linkedSinceRepair += linked }
            tail.complete(claimed.map(\.position))
            return claimed.count
        }
    }

    /// Background upkeep: reclaim deleted slots, free the slots deleted before
    /// they were linked, and reconnect nodes that back-link pruning orphaned, as
    /// far as `IndexerPolicy` finds each due.
    func maintain(busy: Bool) {
        let generation = current.withLock { $0 }
        let (limbo, linkedSinceRepair) = state.withLock { ($0.limbo, $0.linkedSinceRepair) }
        let upkeep = IndexerPolicy.upkeep(
            busy: busy, readers: tail.hasRecentReaders, deleted: generation.index.deletedCount, live: generation.index.liveCount,
            limbo: limbo.count, linkedSinceRepair: linkedSinceRepair)
        if generation.index.quantizerIsOutgrown {
            // A collection that started small: its codes were fitted on too few
            // vectors (the first batch). Refitting re-encodes every node, with
            // the indexer held; it is not left for idle time, because a bulk
            // load would build its whole graph on the first batch's codes
            // (1M records through `sextant load`: recall@10 0.69 at ef 64).
            // It happens twice at most: at 16 and at 256 times a first batch
            // of 1,000, the second re-encoding 256k codes.
            indexLock.withExclusive { _ = generation.index.refitQuantizerIfOutgrown() }
        }
        guard upkeep.isDue else { return }
        indexLock.withExclusive {
            var freed: [UInt32] = []
            if upkeep.reclaim {  // includes its grace period
                var pacer = ReaderPacer(readers: tail.hasRecentReaders)
                freed = generation.index.reclaimDeleted { pacer.step() }
            }
            if upkeep.freeLimbo {
                generation.index.gate.synchronize()
                freed += limbo
            }
            if upkeep.repair {
                var pacer = ReaderPacer(readers: tail.hasRecentReaders)
                _ = generation.index.repairConnectivity { pacer.step() }
            }
            state.withLock { state in
                if upkeep.freeLimbo { state.limbo.removeAll { limbo.contains($0) } }
                assert(Set(freed).isDisjoint(with: state.freeSlots), "a slot is freed once")
                state.freeSlots.append(contentsOf: freed)
                if upkeep.repair { state.linkedSinceRepair = 0 }
            }
        }
    }

    var needsIndexing: Bool { tail.hasUnclaimed }

    /// The graph's broken invariants, none when healthy (tests and `sextant check`).
    package func indexInvariantViolations() -> [String] {
        indexLock.withExclusive { current.withLock { $0 }.index.invariantViolations() }
    }

    /// A query ran within `StorageLimits.readerActivityWindowMilliseconds`.
    public var hasRecentReaders: Bool { tail.hasRecentReaders }
}
