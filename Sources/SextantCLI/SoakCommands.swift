import ArgumentParser
import Foundation
import SextantSoak

struct Soak: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Long runs against the real processes: weeks of the feed, or minutes of many API clients.",
        subcommands: [SoakFeedCommand.self, SoakAPICommand.self])
}

/// The path of this very binary, which the soaks run the engine and the API with.
func ownExecutable() -> String {
    let path = CommandLine.arguments[0]
    if path.hasPrefix("/") { return path }
    if path.contains("/") { return FileManager.default.currentDirectoryPath + "/" + path }
    for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
        let candidate = String(directory) + "/" + path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return path
}

private func printReport(_ report: some Encodable) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    print(String(decoding: try encoder.encode(report), as: UTF8.self))
}

struct SoakFeedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feed",
        abstract: "Seed 003's tender feed, a simulated day in --day-seconds: deletes, re-publications and four batches a day while clients query and backups run; per-day disk, RSS, slots, latency, recall@10 (CSV, PNG, JSON).")

    @Option(help: "A scaled set from make_scaled.py (base.fvecs, queries.fvecs) with at least days × records-per-day vectors.")
    var dataset: String
    @Option(help: "Folder for the engine's data, backups, logs, the CSV and the plot.") var work = "/tmp/sextant-soak"
    @Option(help: "Simulated days.") var days = 30
    @Option(name: .customLong("records-per-day"), help: "Records written per day (new tenders and re-publications).")
    var recordsPerDay = 80_000
    @Option(name: .customLong("batches-per-day"), help: "Batches the day's records arrive in.") var batchesPerDay = 4
    @Option(name: .customLong("update-fraction"), help: "Share of each batch that re-publishes a live tender.") var updateFraction = 0.10
    @Option(name: .customLong("lifetime-days"), help: "Days from publication to deadline, as LOW-HIGH (deleted the day after).")
    var lifetimeDays = "11-15"
    @Option(name: .customLong("day-seconds"), help: "Wall-clock seconds per simulated day.") var daySeconds = 110.0
    @Option(help: "Query clients.") var clients = 8
    @Option(name: .customLong("qps-per-client"), help: "Each client's queries per second (0: as fast as answers come).")
    var qpsPerClient = 25.0
    @Option(name: .customLong("recall-queries"), help: "Queries whose recall@10 is measured each day (the same first N every day).")
    var recallQueries = 1_000
    @Option(name: .customLong("backups-per-day"), help: "Backups per simulated day (to a folder store under --work).") var backupsPerDay = 4
    @Option(name: .customLong("steady-from-day"), help: "The day the targets compare the rest of the run against.")
    var steadyFromDay = 15
    @Option(help: "Feed seed.") var seed: UInt64 = 1
    @Option(help: "The collection's search ef (default: the engine's; a million scaled records need about 192 for recall@10 0.95).")
    var ef: Int?
    @Flag(name: .customLong("no-text-index"), help: "Create the collection without its BM25 index.") var noTextIndex = false
    @Flag(name: .customLong("keep-data"), help: "Keep the engine's data and the backups afterwards.") var keepData = false
    @Option(name: .customLong("engine-arg"), parsing: .singleValue, help: "An extra argument for `sextant engine` (repeatable).")
    var engineArguments: [String] = []
    @Flag(help: "Print only the JSON report.") var json = false

    func run() async throws {
        var plan = SoakFeed.Plan()
        plan.days = days
        plan.recordsPerDay = recordsPerDay
        plan.batchesPerDay = batchesPerDay
        plan.updateFraction = updateFraction
        plan.seed = seed
        let bounds = lifetimeDays.split(separator: "-").compactMap { Int($0) }
        guard bounds.count == 2, bounds[0] <= bounds[1] else { throw ValidationError("--lifetime-days takes LOW-HIGH, e.g. 11-15") }
        plan.lifetimeDays = bounds[0]...bounds[1]
        var configuration = FeedSoak.Configuration(dataset: dataset, workDirectory: work, executable: ownExecutable())
        configuration.plan = plan
        configuration.daySeconds = daySeconds
        configuration.clients = clients
        configuration.queriesPerSecondPerClient = qpsPerClient
        configuration.recallQueries = recallQueries
        configuration.backupsPerDay = backupsPerDay
        configuration.steadyFromDay = steadyFromDay
        configuration.textIndex = !noTextIndex
        if let ef {
            guard (1...4_096).contains(ef) else { throw ValidationError("--ef must be in 1...4096") }
            configuration.ef = ef
        }
        configuration.keepData = keepData
        configuration.engineArguments = engineArguments
        let quiet = json
        SoakChildren.stopOnSignals()
        let report = try await FeedSoak(configuration: configuration).run { message in
            if !quiet { FileHandle.standardError.write(Data("\(message)\n".utf8)) }
        }
        try printReport(report)
    }
}

struct SoakAPICommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "api",
        abstract: "N clients on the search API's ChromaDB routes (query, filtered query, get, count) for minutes; the API's RSS over time and every status counted (CSV, PNG, JSON).")

    @Option(help: "The debian-minilm dataset folder.") var dataset: String
    @Option(help: "Folder for the data, logs, the CSV and the plot.") var work = "/tmp/sextant-soak"
    @Option(help: "Concurrent clients.") var clients = 64
    @Option(help: "Length of the run in seconds.") var seconds = 600.0
    @Option(name: .customLong("sample-seconds"), help: "Interval between memory samples.") var sampleSeconds = 5.0
    @Option(name: .customLong("steady-from-seconds"), help: "Memory is compared from this point on.") var steadyFromSeconds = 120.0
    @Option(help: "Records loaded before the run.") var records = 40_000
    @Option(name: .customLong("api-arg"), parsing: .singleValue, help: "An extra argument for `sextant api` (repeatable).")
    var apiArguments: [String] = []
    @Flag(help: "Print only the JSON report.") var json = false

    func run() async throws {
        var configuration = APISoak.Configuration(dataset: dataset, workDirectory: work, executable: ownExecutable())
        configuration.clients = clients
        configuration.seconds = seconds
        configuration.sampleSeconds = sampleSeconds
        configuration.steadyFromSeconds = steadyFromSeconds
        configuration.records = records
        configuration.apiArguments = apiArguments
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let quiet = json
        SoakChildren.stopOnSignals()
        let report = try await APISoak(configuration: configuration).run { message in
            if !quiet { FileHandle.standardError.write(Data("\(message)\n".utf8)) }
        }
        try printReport(report)
    }
}
