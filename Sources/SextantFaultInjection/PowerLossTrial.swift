import SextantPayload
import SextantStorage
import SextantSupport

/// One simulated power cut: a seeded workload of batch writes, re-upserts,
/// updates, deletes and checkpoints (each checkpoint rotates the WAL) runs on
/// a `FaultInjectionFileSystem` until the power goes after a chosen number of
/// file operations; the disk a restart would find is reopened and checked
/// against what was acknowledged.
///
/// What must hold: the collection opens (a refused collection counts as lost
/// data); every acknowledged write is present and current; the write in
/// flight at the cut is either wholly there or wholly absent; the recovered
/// collection takes new writes, and they survive a clean restart.
package struct PowerLossTrial: Sendable {
    package var seed: UInt64
    /// Workload steps (one batch, delete, update or checkpoint each).
    package var steps: Int
    /// The cut comes after this many state-changing file operations; nil runs the workload whole, then cuts.
    package var cutAfterOperations: Int?
    package var variant: FaultInjectionFileSystem.CutVariant
    /// Runs on a disk whose fsyncs do nothing (to show that the checks can fail).
    package var syncsLie = false

    package init(seed: UInt64, steps: Int, cutAfterOperations: Int?, variant: FaultInjectionFileSystem.CutVariant) {
        self.seed = seed
        self.steps = steps
        self.cutAfterOperations = cutAfterOperations
        self.variant = variant
    }

    package struct Outcome: Sendable {
        /// File operations done before the power went (all of the workload's when there was no cut in it).
        package var operations: Int
        /// Steps acknowledged before the cut.
        package var acknowledgedSteps: Int
        /// Records the acknowledged state holds.
        package var expectedRecords: Int
        /// Everything that did not hold; empty when the trial passed.
        package var problems: [String]
    }

    static let root = "/power"
    static let collectionName = "power"
    static let dimension = 8
    /// Ids are drawn from a small pool so that batches re-upsert, update and delete what earlier ones wrote.
    static let idPool = 48

    /// A step of the workload and the state it leaves each touched id in (nil: absent).
    private enum Step {
        case upsert([String: Int])
        case update([String: Int])
        case delete([String])
        case checkpoint
    }

    package func run() async -> Outcome {
        let disk = FaultInjectionFileSystem(cutAfterOperations: cutAfterOperations, syncsLie: syncsLie)
        var model: [String: Int] = [:]  // id → version, acknowledged
        var pending: [String: Int?]? = nil  // the step in flight at the cut
        var acknowledged = 0
        var created = false
        var random = SplitMix64(seed: seed)
        var version = 0
        let io = DurableIO(preferring: .sync, fileSystem: disk)
        var engine: StorageEngine?
        workload: do {
            let opened: StorageEngine
            do { opened = try StorageEngine(directory: Self.root + "/data", io: io, indexerThreads: 1) } catch { break workload }
            engine = opened
            let configuration = CollectionConfiguration(
                name: Self.collectionName, dimension: Self.dimension, metric: .l2, capacity: 256, textIndex: TextIndexSettings(),
                payloadIndexes: ["version"])
            do { _ = try await opened.create(configuration) } catch { break workload }
            created = true
            guard let collection = opened.collection(named: Self.collectionName) else { break workload }
            for _ in 0..<steps {
                version += 1
                let step = Self.nextStep(&random, model: model, version: version)
                switch step {
                case .upsert(let changes), .update(let changes):
                    pending = changes.mapValues { Optional($0) }
                case .delete(let ids):
                    pending = Dictionary(uniqueKeysWithValues: ids.map { ($0, Int?.none) })
                case .checkpoint:
                    pending = [:]
                }
                do {
                    switch step {
                    case .upsert(let changes):
                        _ = try await collection.write(.upsert(changes.sorted { $0.key < $1.key }.map { Self.record($0.key, $0.value) }))
                    case .update(let changes):
                        _ = try await collection.write(.update(
                            changes.sorted { $0.key < $1.key }.map { Self.record($0.key, $0.value) }, ignoreMissing: false))
                    case .delete(let ids):
                        _ = try await collection.write(.delete(ids: ids))
                    case .checkpoint:
                        try await collection.checkpoint()
                    }
                } catch {
                    break workload
                }
                for (id, value) in pending ?? [:] { model[id] = value }
                pending = nil
                acknowledged += 1
            }
        }
        let operations = disk.operations
        let trace = disk.recentOperations.suffix(24)
        disk.cutPower()
        engine?.indexer.stop()
        io.stop()
        engine = nil

        var problems: [String] = []
        let imageSeed = seed ^ (UInt64(cutAfterOperations ?? 0) &* 0x5EED)
        let image = disk.survivingImage(variant, seed: imageSeed)
        problems += await Self.check(image, created: created, model: model, pending: pending, phase: "after the cut")
        if problems.isEmpty {
            problems += await Self.writeAfterRecovery(image, created: created, model: &model)
        }
        if !problems.isEmpty { problems.append("the file operations before the cut: " + trace.joined(separator: "; ")) }
        if !problems.isEmpty {
            // Recovery has changed `image` by now; the same seed rebuilds what the cut left.
            let left = Self.tree(disk.survivingImage(variant, seed: imageSeed), Self.root)
            problems.append("files after the cut: " + left.joined(separator: "; "))
        }
        return Outcome(operations: operations, acknowledgedSteps: acknowledged, expectedRecords: model.count, problems: problems)
    }

    /// Every file under `path` with its size, for a failure's report.
    static func tree(_ disk: FaultInjectionFileSystem, _ path: String) -> [String] {
        if disk.isDirectory(path) { return disk.list(path).flatMap { tree(disk, path + "/" + $0) } }
        return ["\(path.split(separator: "/").suffix(2).joined(separator: "/")) \(disk.sizeBytes(path) ?? -1)"]
    }

    private static func nextStep(_ random: inout SplitMix64, model: [String: Int], version: Int) -> Step {
        let roll = random.next() % 100
        let live = model.keys.sorted()
        if roll < 10 { return .checkpoint }
        if roll < 25, !live.isEmpty {
            let count = 1 + Int(random.next() % 4)
            return .delete((0..<count).map { _ in live[Int(random.next() % UInt64(live.count))] }.uniqued())
        }
        if roll < 35, !live.isEmpty {
            let count = 1 + Int(random.next() % 4)
            let ids = (0..<count).map { _ in live[Int(random.next() % UInt64(live.count))] }.uniqued()
            return .update(Dictionary(uniqueKeysWithValues: ids.map { ($0, version) }))
        }
        let count = 1 + Int(random.next() % 12)
        let ids = (0..<count).map { _ in "r\(random.next() % UInt64(idPool))" }.uniqued()
        return .upsert(Dictionary(uniqueKeysWithValues: ids.map { ($0, version) }))
    }

    /// Every field of a record follows from its id and version, so a record read back is checked whole.
    static func record(_ id: String, _ version: Int) -> RecordInput {
        RecordInput(id: id, vector: vector(id, version), document: "record \(id) at version \(version)",
                    metadata: ["version": .int(Int64(version)), "id": .string(id)])
    }

    static func vector(_ id: String, _ version: Int) -> [Float] {
        var random = SplitMix64(seed: UInt64(truncatingIfNeeded: id.hashValueStable &* 31 &+ version))
        return (0..<dimension).map { _ in Float(random.next() % 2_000) / 100 - 10 }
    }

    /// The version a read-back record carries, or a description of what is wrong with it.
    private struct Mismatch: Error { let text: String }

    private static func version(of record: RecordView) -> Result<Int, Mismatch> {
        guard case .int(let stored)? = record.metadata?["version"] else { return .failure(Mismatch(text: "\(record.id): no version")) }
        let expected = Self.record(record.id, Int(stored))
        guard record.document == expected.document, record.metadata == expected.metadata else {
            return .failure(Mismatch(text: "\(record.id): document or metadata do not match version \(stored)"))
        }
        guard let vector = record.vector, let want = expected.vector, vector.count == want.count,
              zip(vector, want).allSatisfy({ abs($0 - $1) <= 0.01 })
        else { return .failure(Mismatch(text: "\(record.id): vector does not match version \(stored)")) }
        return .success(Int(stored))
    }

    private static func openEngine(_ disk: FaultInjectionFileSystem) throws -> (StorageEngine, DurableIO) {
        let io = DurableIO(preferring: .sync, fileSystem: disk)
        do { return (try StorageEngine(directory: root + "/data", io: io, indexerThreads: 1), io) } catch {
            io.stop()
            throw error
        }
    }

    private static func check(_ disk: FaultInjectionFileSystem, created: Bool, model: [String: Int], pending: [String: Int?]?,
                              phase: String) async -> [String] {
        let engine: StorageEngine
        let io: DurableIO
        do { (engine, io) = try openEngine(disk) } catch {
            return ["\(phase): the data folder does not open: \(error)"]
        }
        defer {
            engine.indexer.stop()
            io.stop()
        }
        guard let collection = engine.collection(named: collectionName) else {
            return created && !model.isEmpty ? ["\(phase): the collection is gone; \(model.count) acknowledged records with it"] : []
        }
        let ids = Set(model.keys).union(pending?.keys ?? [:].keys).sorted()
        let records: [RecordView]
        do { records = try collection.get(ids: ids, include: [.documents, .metadatas, .vectors]) } catch {
            return ["\(phase): reading the records failed: \(error)"]
        }
        var actual: [String: Int] = [:]
        var problems: [String] = []
        for record in records {
            switch version(of: record) {
            case .success(let stored): actual[record.id] = stored
            case .failure(let problem): problems.append("\(phase): \(problem.text)")
            }
        }
        // The step in flight is all there or not at all.
        var applied: Bool? = nil
        if let pending, !pending.isEmpty {
            let new = pending.allSatisfy { actual[$0.key] == $0.value }
            let old = pending.allSatisfy { actual[$0.key] == model[$0.key] }
            if !new && !old {
                problems.append("\(phase): the write in flight is half-applied: \(pending.keys.sorted().map { "\($0)=\(actual[$0].map(String.init) ?? "absent")" })")
            }
            applied = new && !old
        }
        for id in ids where pending?.keys.contains(id) != true {
            if actual[id] != model[id] {
                problems.append("\(phase): \(id) is \(actual[id].map { "version \($0)" } ?? "absent"), acknowledged \(model[id].map { "version \($0)" } ?? "deleted")")
            }
        }
        let count = collection.count
        let expected = model.count + (applied == true ? (pending ?? [:]).reduce(0) { total, change in
            total + (change.value != nil && model[change.key] == nil ? 1 : 0) - (change.value == nil && model[change.key] != nil ? 1 : 0)
        } : 0)
        if count != expected { problems.append("\(phase): \(count) live records, \(expected) expected") }
        return problems
    }

    /// The recovered collection takes a new batch (so the WAL tail was cut
    /// where appends can follow), and both the recovered and the new records
    /// survive a clean shutdown and another open.
    private static func writeAfterRecovery(_ disk: FaultInjectionFileSystem, created: Bool, model: inout [String: Int]) async -> [String] {
        guard created else { return [] }
        do {
            let (engine, io) = try openEngine(disk)
            defer { io.stop() }
            guard let collection = engine.collection(named: collectionName) else {
                engine.indexer.stop()
                return []
            }
            // Adopt what recovery kept (the write in flight may be there), then add on top.
            let current = try collection.get(include: [.metadatas])
            model = [:]
            for record in current {
                if case .int(let stored)? = record.metadata?["version"] { model[record.id] = Int(stored) }
            }
            let fresh = (0..<5).map { ("after\($0)", 1_000_000 + $0) }
            _ = try await collection.write(.upsert(fresh.map { record($0.0, $0.1) }))
            for (id, version) in fresh { model[id] = version }
            try await engine.close()
        } catch {
            return ["after recovery: a new write or the clean shutdown failed: \(error)"]
        }
        return await check(disk, created: true, model: model, pending: nil, phase: "after recovery and a clean restart")
    }
}

extension Array where Element: Hashable {
    fileprivate func uniqued() -> [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}

extension String {
    /// FNV-1a: Swift's hashValue is seeded per process, and the vectors must not depend on the run.
    fileprivate var hashValueStable: Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return Int(truncatingIfNeeded: hash >> 1)
    }
}
