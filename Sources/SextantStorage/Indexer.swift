import CSextantIO
import CSextantSystem
import SextantConcurrency
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Links written records into their collections' graphs in the background.
///
/// Inserting into HNSW costs far more than the fsync that acknowledged the
/// record, so it happens after the acknowledgement, on dedicated threads at a
/// lower scheduling priority (`BackgroundPriority`, nice 10 by default): on a
/// small machine, queries win the CPU while an ingest runs. Until a record is linked, queries find it by exact scan
/// of the unindexed tail. When there is nothing to link, the threads reclaim
/// deleted slots and repair connectivity.
public final class Indexer: @unchecked Sendable {
    private let collections = Mutex<[ObjectIdentifier: Weak]>([:])
    private let signal = Semaphore()
    private let stopping = Atomic<Bool>(false)
    public let threadCount: Int
    /// Scheduling priority of the indexer threads.
    public let priority: BackgroundPriority
    /// Where checkpoints run: one thread at the indexer's priority. On the
    /// global executor a checkpoint's CRC and copying ran at query priority and
    /// held a core for whole scheduler ticks.
    var checkpointExecutor: NicedExecutor { NicedExecutor.shared(priority: priority) }

    private struct Weak { weak var collection: Collection? }

    /// `threads` link in parallel while no query runs (a bulk load uses every
    /// core); while queries run, only the first links, one record per step.
    public init(threads: Int = 1, priority: BackgroundPriority = .default) {
        threadCount = max(1, threads)
        self.priority = priority

        for number in 0..<threadCount {
            var handle = pthread_t()
            let started = pthread_create(&handle, nil, { argument in
                guard let argument else { return nil }
                let started = Unmanaged<Indexer.Start>.fromOpaque(argument).takeRetainedValue()
                started.indexer.run(number: started.number)
                return nil
            }, Unmanaged.passRetained(Start(indexer: self, number: number)).toOpaque())
            precondition(started == 0, "cannot start indexer thread \(number)")
            pthread_detach(handle)
        }
    }

    func register(_ collection: Collection) {
        collections.withLock { $0[ObjectIdentifier(collection)] = Weak(collection: collection) }
        collection.indexer = self
        wake()
    }

    func unregister(_ collection: Collection) {
        _ = collections.withLock { $0.removeValue(forKey: ObjectIdentifier(collection)) }
    }

    func wake() { signal.signal() }

    public func stop() {
        stopping.store(true, ordering: .releasing)
        for _ in 0..<threadCount { signal.signal() }
    }

    /// Holds linking and upkeep until `resume`, after the round in progress (tests
    /// use it to keep records in the unindexed tail; writers then wait at its bound).
    public func pause() { paused.store(true, ordering: .releasing) }

    public func resume() {
        paused.store(false, ordering: .releasing)
        for _ in 0..<threadCount { signal.signal() }
    }
    private let paused = Atomic<Bool>(false)

    private final class Start {
        let indexer: Indexer
        let number: Int
        init(indexer: Indexer, number: Int) {
            self.indexer = indexer
            self.number = number
        }
    }

    private func run(number: Int) {
        sx_set_thread_name("sextant-indexer")
        priority.applyToCurrentThread()
        _ = sx_set_thread_timer_slack(1_000)  // its pauses under reads are 20 µs
        var idleRounds = 0
        var rounds = 0
        while !stopping.load(ordering: .acquiring) {
            if paused.load(ordering: .acquiring) {
                signal.wait()
                continue
            }
            let targets = collections.withLock { table in
                table = table.filter { $0.value.collection != nil }
                return table.values.compactMap(\.collection)
            }
            var linked = 0
            for collection in targets {
                // While queries run, one thread links one record at a time with a pause in between (`ReaderPacer`).
                let readers = collection.hasRecentReaders
                if readers && number > 0 { continue }
                linked += collection.indexSome(maximum: readers ? IndexerPolicy.linkStepUnderReads : IndexerPolicy.linkStep)
                if readers { usleep(ReaderPacer.pauseMicroseconds) }
                if number == 0 && rounds % IndexerPolicy.roundsBetweenBusyUpkeep == 0 { collection.maintain(busy: true) }
            }
            rounds &+= 1
            if linked > 0 {
                idleRounds = 0
                continue
            }
            if number == 0 {
                for collection in targets where !collection.needsIndexing { collection.maintain(busy: false) }
            }
            idleRounds += 1
            if idleRounds > 1 { signal.wait() }  // sleep until a writer publishes
        }
    }
}

/// When the indexer links and when it cleans up: every threshold of the
/// background work in one place. The figures behind them are in
/// docs/BENCHMARKS.md (engine under ingest).
package enum IndexerPolicy {
    /// Records one indexer round links per collection with no query running.
    package static let linkStep = 64
    /// The same while queries run: one record (~150 µs), then a `ReaderPacer` pause.
    static let linkStepUnderReads = 1
    /// Records linked per step when replay drains an over-full tail (nothing else runs then).
    static let replayDrainStep = 256
    /// While records wait to be linked, urgent upkeep is checked every this many rounds.
    static let roundsBetweenBusyUpkeep = 16

    /// Tombstones make every walk slower: reclaim once they reach this share
    /// (a divisor of the live graph) even mid-ingest; sooner under reads, when
    /// they cost every query.
    static let urgentTombstoneDivisor = 2
    static let urgentTombstoneDivisorUnderReads = 8
    static let urgentTombstoneMinimum = 1_024
    /// With nothing to link, reclaim once tombstones reach a twentieth of the graph.
    static let idleTombstoneDivisor = 20
    static let idleTombstoneMinimum = 256
    /// Slots deleted before they were linked are freed when idle, or once this many wait.
    static let busyLimboMinimum = 1_024

    package struct Upkeep: Equatable {
        package var reclaim = false
        package var freeLimbo = false
        package var repair = false
        package var isDue: Bool { reclaim || freeLimbo || repair }

        package init(reclaim: Bool = false, freeLimbo: Bool = false, repair: Bool = false) {
            self.reclaim = reclaim
            self.freeLimbo = freeLimbo
            self.repair = repair
        }
    }

    /// What upkeep is due. `busy`: records still wait to be linked, so only the
    /// urgent part runs.
    package static func upkeep(busy: Bool, readers: Bool, deleted: Int, live: Int, limbo: Int, linkedSinceRepair: Int) -> Upkeep {
        let divisor = readers ? urgentTombstoneDivisorUnderReads : urgentTombstoneDivisor
        let urgent = deleted >= max(urgentTombstoneMinimum, live / divisor)
        var upkeep = Upkeep()
        upkeep.reclaim = urgent || (!busy && deleted >= max(idleTombstoneMinimum, live / idleTombstoneDivisor))
        upkeep.freeLimbo = limbo > 0 && (!busy || limbo >= busyLimboMinimum)
        upkeep.repair = !busy && linkedSinceRepair > 0
        return upkeep
    }
}
