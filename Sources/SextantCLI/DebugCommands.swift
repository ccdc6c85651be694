import ArgumentParser
import Foundation
import SextantBench
import SextantFaultInjection
import SextantSQLite
import SextantStorage

#if canImport(Glibc)
import Glibc
#endif

struct Debug: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Test and diagnosis tools.", shouldDisplay: false, subcommands: [CrashWriter.self, PowerLoss.self, SQLiteWriter.self])
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

/// Simulated power cuts against the storage layer on a fault-injecting file
/// system (`tools/crash/power-loss` runs it): every acknowledged write must
/// survive, nothing may be half-applied, and every collection must open.
struct PowerLoss: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "power-loss", abstract: "Cut the power at random file operations during writes and checkpoints, then check.")

    @Option(help: "Cuts to simulate.") var trials = 100
    @Option(help: "Seeds the workload, the cut points and what each cut keeps.") var seed: UInt64 = 1
    @Option(help: "Workload steps (batches, updates, deletes, checkpoints).") var steps = 40
    @Option(help: "drop, prefix, tear or all (cycled).") var variant = "all"
    @Flag(help: "Cut after every operation of the workload in turn, for each variant (ignores --trials).") var exhaustive = false
    @Option(name: .customLong("cut-after"), help: "Replay one trial: cut after this many file operations (with --seed, --steps, --variant).")
    var cutAfter: Int?

    func run() async throws {
        let variants: [FaultInjectionFileSystem.CutVariant]
        if variant == "all" {
            variants = FaultInjectionFileSystem.CutVariant.allCases
        } else if let one = FaultInjectionFileSystem.CutVariant(rawValue: variant) {
            variants = [one]
        } else {
            throw ValidationError("--variant must be drop, prefix, tear or all")
        }
        guard trials > 0, steps > 0 else { throw ValidationError("--trials and --steps must be positive") }
        if let cutAfter {
            let outcome = await PowerLossTrial(seed: seed, steps: steps, cutAfterOperations: cutAfter, variant: variants[0]).run()
            print("cut after \(cutAfter) of the workload's file operations (\(variants[0].rawValue)): \(outcome.acknowledgedSteps) steps acknowledged, "
                  + "\(outcome.expectedRecords) records expected")
            for problem in outcome.problems { print("  \(problem)") }
            if !outcome.problems.isEmpty { throw ExitCode(1) }
            return
        }
        let started = Date()
        let summary = await PowerLossRun(trials: trials, seed: seed, steps: steps, variants: variants, exhaustive: exhaustive).run {
            index, trial, outcome in
            if !outcome.problems.isEmpty {
                print("trial \(index): cut after \(trial.cutAfterOperations ?? 0) operations (\(trial.variant.rawValue)): FAILED")
                for problem in outcome.problems.prefix(5) + outcome.problems.suffix(1) { print("  \(problem)") }
            }
        }
        let variantsText = summary.perVariant.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue) \($0.value)" }
        print("power-loss: \(summary.trials) cuts (\(variantsText.joined(separator: ", "))) over a workload of "
              + "\(summary.workloadOperations) file operations, seed \(seed); \(summary.acknowledgedSteps) acknowledged steps checked; "
              + "\(summary.failures.count) failed; \(Int(Date().timeIntervalSince(started))) s")
        if !summary.failures.isEmpty { throw ExitCode(1) }
    }
}

/// The SQLite side of the power-loss cross-check (tools/crash/fuse_power_loss.py):
/// commits one row per transaction through `SextantSQLite.Database`, opened as
/// every service opens its database (WAL, synchronous=FULL), and appends each
/// committed row's number to the ack log (on another file system) after COMMIT
/// returns. It runs until it is killed.
struct SQLiteWriter: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sqlite-writer")

    @Option var database: String
    @Option(name: .customLong("ack-log")) var ackLog: String

    func run() async throws {
        let db = try Database(path: database)
        try db.execute("CREATE TABLE IF NOT EXISTS rows (n INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        try db.execute("CREATE TABLE IF NOT EXISTS latest (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL)")
        let log = open(ackLog, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard log >= 0 else { throw ValidationError("cannot open \(ackLog)") }
        var n: Int64 = (try db.query("SELECT COALESCE(MAX(n), 0) FROM rows").first?[0].integer) ?? 0
        while true {
            n += 1
            let row = n
            try db.transaction { transaction in
                try transaction.query("INSERT INTO rows (n, body) VALUES (?, ?)", [.integer(row), .text(String(repeating: "x", count: Int(row % 700)))])
                try transaction.query("INSERT INTO latest (id, n) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET n = excluded.n", [.integer(row)])
            }
            let line = Array("\(row)\n".utf8)
            _ = line.withUnsafeBytes { write(log, $0.baseAddress, $0.count) }
        }
    }
}
