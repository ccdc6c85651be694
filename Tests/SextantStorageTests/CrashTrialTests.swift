import Foundation
import SextantBench
import SextantPayload
import SextantStorage
import SextantTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// kill -9 at random moments during a concurrent, checkpointing ingest of the
/// debian-minilm records, then reopen and check: every acknowledged batch is
/// there with identical vector, document and metadata, and no batch is partly
/// visible. SEXTANT_CRASH_TRIALS sets the number of trials (CI: 50; manual: 1000).
@Suite struct CrashTrialTests {
    static let trials = Int(ProcessInfo.processInfo.environment["SEXTANT_CRASH_TRIALS"] ?? "") ?? 50
    static let writers = 3
    static let recordLimit = 12_000

    @Test func acknowledgedWritesSurviveKillNine() async throws {
        let plan = try CrashPlan.load(dataset: TestDataset.debianMiniLM, seed: 7, writers: Self.writers, limit: Self.recordLimit)
        let batches = (0..<Self.writers).map { plan.batches(for: $0) }
        var generator = SeededGenerator(seed: UInt64(Date().timeIntervalSince1970))
        var summary: [String] = []
        for trial in 0..<Self.trials {
            let directory = TemporaryDirectory("sextant-crash")
            defer { directory.remove() }
            let ackLog = directory.file("acks")
            // Kill on progress, not on a clock: after a random number of acknowledged
            // batches plus a random few milliseconds, so every trial dies mid-ingest.
            let totalBatches = batches.reduce(0) { $0 + $1.count }
            let target = Int.random(in: 0..<totalBatches, using: &generator)
            let extraMicroseconds = Int.random(in: 0...8_000, using: &generator)
            let writer = try SextantBinary.start(
                ["debug", "crash-writer", "--data", directory.file("data"), "--dataset", TestDataset.debianMiniLM,
                 "--seed", "7", "--writers", "\(Self.writers)", "--limit", "\(Self.recordLimit)", "--ack-log", ackLog,
                 "--checkpoint-every-ms", "\(Int.random(in: 20...200, using: &generator))"],
                logPath: directory.file("writer.log"))
            let deadline = Date().addingTimeInterval(60)
            while writer.isRunning && Date() < deadline && Self.ackCount(ackLog) < target {
                usleep(500)
            }
            usleep(UInt32(extraMicroseconds))
            let finishedEarly = !writer.isRunning
            writer.killHard()
            let acked = try Self.acknowledgedBatches(ackLog)
            let problems = try await Self.verify(directory: directory.file("data"), plan: plan, batches: batches, acked: acked)
            #expect(problems.isEmpty, "trial \(trial) (killed at \(target) batches + \(extraMicroseconds) µs): \(problems.prefix(5))")
            if !problems.isEmpty {
                let log = (try? String(contentsOfFile: directory.file("writer.log"), encoding: .utf8)) ?? ""
                Issue.record("writer log: \(log.suffix(2_000))")
                return
            }
            summary.append("\(acked.reduce(0, +))/\(totalBatches)\(finishedEarly ? "(done)" : "")")
        }
        print("crash trials: \(Self.trials) passed; acknowledged/total batches at the kill: \(summary.joined(separator: " "))")
    }

    static func ackCount(_ path: String) -> Int {
        guard let data = FileManager.default.contents(atPath: path) else { return 0 }
        return data.reduce(0) { $0 + ($1 == 10 ? 1 : 0) }
    }

    /// Batches acknowledged per writer; each writer's acks must form a prefix 0..<n.
    static func acknowledgedBatches(_ path: String) throws -> [Int] {
        var acked = [Set<Int>](repeating: [], count: writers)
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ").compactMap { Int($0) }
            guard parts.count == 2 else { continue }  // a line cut by the kill
            acked[parts[0]].insert(parts[1])
        }
        return acked.map { set in
            let count = set.count
            precondition(set == Set(0..<count), "a writer's acknowledgements are sequential")
            return count
        }
    }

    static func verify(directory: String, plan: CrashPlan, batches: [[CrashPlan.Batch]], acked: [Int]) async throws -> [String] {
        guard FileManager.default.fileExists(atPath: directory) else {
            return acked.allSatisfy({ $0 == 0 }) ? [] : ["no data folder but \(acked) batches acknowledged"]
        }
        let engine = try StorageEngine(directory: directory)
        defer { engine.indexer.stop() }
        guard let collection = engine.collection(named: CrashPlan.collectionName) else {
            return acked.allSatisfy({ $0 == 0 }) ? [] : ["no collection but \(acked) batches acknowledged"]
        }
        var problems: [String] = []
        for writer in 0..<writers {
            let actual = try collection.get(filter: .compare(key: "writer", op: .eq, value: .int(Int64(writer))),
                                            include: [.documents, .metadatas, .vectors])
            let acknowledged = plan.expectedState(writer: writer, afterBatches: acked[writer])
            let possiblyDurable = plan.expectedState(writer: writer, afterBatches: acked[writer] + 1)
            if same(actual, acknowledged) || same(actual, possiblyDurable) { continue }
            problems.append(
                "writer \(writer): \(actual.count) records match neither \(acknowledged.count) (after \(acked[writer]) batches) "
                    + "nor \(possiblyDurable.count) (after \(acked[writer] + 1))")
        }
        // The collection stays usable: a query through the recovered index works.
        if let any = try collection.get(limit: 1, include: [.vectors]).first, let vector = any.vector {
            let hits = try collection.query([vector], k: 1)
            if hits.first?.first?.id != any.id { problems.append("recovered record \(any.id) is not its own nearest neighbour") }
        }
        return problems
    }

    static func same(_ actual: [RecordView], _ expected: [String: RecordInput]) -> Bool {
        guard actual.count == expected.count else { return false }
        for record in actual {
            guard let want = expected[record.id], record.document == want.document, record.metadata == want.metadata,
                let vector = want.vector, record.vector == CrashPlan.storedVector(vector, metric: .cosine)
            else { return false }
        }
        return true
    }
}
