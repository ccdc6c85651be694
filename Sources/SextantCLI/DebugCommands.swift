import ArgumentParser
import Foundation
import SextantBench
import SextantStorage

#if canImport(Glibc)
import Glibc
#endif

struct Debug: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Test and diagnosis tools.", shouldDisplay: false, subcommands: [CrashWriter.self])
}

/// The writer process of the crash trials (Tests/SextantStorageTests/CrashTrialTests):
/// runs the deterministic CrashPlan through the real storage code, with
/// concurrent writers and checkpoints, appending "writer batch" to the ack log
/// after each acknowledged batch. The test kills it with SIGKILL at a random moment.
struct CrashWriter: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "crash-writer")

    @Option var data: String
    @Option var dataset: String
    @Option var seed: UInt64 = 1
    @Option var writers = 4
    @Option(help: "Dataset records to use.") var limit = 6_000
    @Option(name: .customLong("ack-log")) var ackLog: String
    @Option(name: .customLong("checkpoint-every-ms"), help: "Checkpoint this often (0 = only by WAL size).")
    var checkpointEveryMilliseconds = 150

    func run() async throws {
        let plan = try CrashPlan.load(dataset: dataset, seed: seed, writers: writers, limit: limit)
        let engine = try StorageEngine(directory: data)
        let (collection, _) = try await engine.create(
            CollectionConfiguration(name: CrashPlan.collectionName, dimension: plan.vectors.dimensions, metric: .cosine),
            getOrCreate: true)
        let log = open(ackLog, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard log >= 0 else { throw ValidationError("cannot open \(ackLog)") }
        let interval = checkpointEveryMilliseconds
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<plan.writers {
                group.addTask {
                    for (number, batch) in plan.batches(for: writer).enumerated() {
                        switch batch {
                        case .upsert(let records): _ = try await collection.write(.upsert(records))
                        case .delete(let ids): _ = try await collection.write(.delete(ids: ids))
                        }
                        let line = Array("\(writer) \(number)\n".utf8)
                        _ = line.withUnsafeBytes { write(log, $0.baseAddress, $0.count) }
                    }
                }
            }
            if interval > 0 {
                group.addTask {
                    while true {
                        try await Task.sleep(for: .milliseconds(interval))
                        try await collection.checkpoint()
                    }
                }
            }
            for _ in 0..<plan.writers { try await group.next() }
            group.cancelAll()
        }
        print("done")
    }
}
