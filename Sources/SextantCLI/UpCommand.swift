import ArgumentParser
import Foundation
import SextantBackup
import SextantClient
import SextantConcurrency
import SextantObjectStore
import SextantSupervisor

/// `sextant up`: the whole system on embedded defaults, one command.
struct UpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Start the engine and the search API (separate processes) with their data under one root.")

    @OptionGroup var data: DataOptions
    @Option(name: .customLong("engine-listen"), help: "Engine address.") var engineListen = "127.0.0.1:7700"
    @Option(name: .customLong("api-listen"), help: "Search API address.") var apiListen = "127.0.0.1:8080"
    @Option(name: .customLong("api-key-file"), help: "API key file (required to listen beyond loopback).") var apiKeyFile: String?
    @Option(name: .customLong("demo-data"), help: "The demo sample to load on a first start.") var demoData: String?
    @Flag(name: .customLong("no-demo"), help: "Do not load the demo collection on a first start.") var noDemo = false
    @Option(name: .customLong("ingest-collection"), help: "Collection the inbox worker writes to.") var ingestCollection = "documents"
    @Option(name: .customLong("ingest-interval"), help: "How often the worker looks at ROOT/inbox.") var ingestInterval = "1m"
    @Option(name: .customLong("ingest-mapping"), help: "Mapping file for the inbox (default: from each file's header).")
    var ingestMapping: String?
    @Flag(name: .customLong("no-ingest"), help: "Do not run the inbox worker.") var noIngest = false
    @Option(help: "A website to keep in a collection: scraped at once when the collection is empty, then every --scrape-interval.")
    var site: String?
    @Option(name: .customLong("scrape-collection"), help: "Collection the scraper keeps current (with --site).") var scrapeCollection = "site"
    @Option(name: .customLong("scrape-interval"), help: "How often the site is scraped (with --site).") var scrapeInterval = "30m"
    @Option(name: .customLong("bots-listen"), help: "Bot gateway admin address (the gateway runs when a token key is set).")
    var botsListen = "127.0.0.1:8090"
    @Option(name: .customLong("bots-key-file"), help: "Key that encrypts bot tokens (default: $SEXTANT_BOTS_KEY); enables the bot gateway.")
    var botsKeyFile: String?
    @Flag(name: .customLong("no-bots"), help: "Do not run the bot gateway even with a token key.") var noBots = false
    @Option(name: .customLong("bots-telegram-api"),
            help: "Telegram Bot API base URL for the gateway (a self-hosted Bot API server); default Telegram's.")
    var botsTelegramAPI: String?
    @OptionGroup var answers: AnswerOptions
    @OptionGroup var backup: BackupLifecycleOptions

    func run() async throws {
        let logger = Logs.make("sextant.up")
        let executable = CommandLine.arguments[0].hasPrefix("/")
            ? CommandLine.arguments[0] : FileManager.default.currentDirectoryPath + "/" + CommandLine.arguments[0]
        try FileManager.default.createDirectory(atPath: data.data, withIntermediateDirectories: true)
        let supervisor = Supervisor(logger: logger)
        let backups = try await backup.start(dataRoot: data.data, logger: logger)
        // The API reaches the engine over a Unix socket in the data root when the
        // path fits (sun_path is 108 bytes): cheaper per call than TCP loopback,
        // and only this user can connect. Other clients use the TCP address.
        let root = data.data.hasPrefix("/") ? data.data : FileManager.default.currentDirectoryPath + "/" + data.data
        let socketPath = root + "/engine.sock"
        let useSocket = socketPath.utf8.count < 100
        var engineArguments = ["engine", "--data", data.data, "--listen", engineListen]
        if useSocket { engineArguments += ["--unix", socketPath] }
        try supervisor.start(ChildSpec(name: "engine", executable: executable, arguments: engineArguments, stopTimeoutSeconds: 60))
        let apiEngine = useSocket ? "unix:" + socketPath : engineListen
        var apiArguments = ["api", "--data", data.data, "--engine", apiEngine, "--listen", apiListen]
        if let apiKeyFile { apiArguments += ["--api-key-file", apiKeyFile] }
        // The page manages the users' bots through the API, which forwards to the gateway.
        let botsEnabled = !noBots && (botsKeyFile != nil || !(ProcessInfo.processInfo.environment["SEXTANT_BOTS_KEY"] ?? "").isEmpty)
        if botsEnabled { apiArguments += ["--bots", "http://" + botsListen] }
        apiArguments += answers.arguments
        try supervisor.start(ChildSpec(name: "api", executable: executable, arguments: apiArguments, stopTimeoutSeconds: 15))

        let client = try await Self.waitForEngine(engineListen)
        if !noDemo {
            if let sample = DemoLoader.locateSample(demoData, executable: executable) {
                try await DemoLoader.loadIfEmpty(client: client, samplePath: sample, embedder: Embedders.registry().default,
                                                 logger: logger)
            } else {
                logger.warning("no demo sample found (tools/demo/debian-sample.jsonl.gz); starting without a demo collection")
            }
        }
        // Started after the demo load, so the engine's first collection is the demo.
        if !noIngest {
            // The worker is a batch job: niced, so queries keep the CPU first.
            var ingestArguments = ["-n", String(BatchNiceness.workers), executable, "ingest", "--data", data.data, "--engine", apiEngine,
                                   "--collection", ingestCollection, "--source", root + "/inbox", "--interval", ingestInterval,
                                   "--no-progress"]
            if let ingestMapping { ingestArguments += ["--mapping", ingestMapping] }
            try FileManager.default.createDirectory(atPath: root + "/inbox", withIntermediateDirectories: true)
            try supervisor.start(ChildSpec(name: "ingest", executable: "/usr/bin/nice", arguments: ingestArguments,
                                           stopTimeoutSeconds: 30))
        }
        if let site {
            // Like the worker, a niced batch job. It does a full scrape at once when
            // the collection is empty (a first start), otherwise waits one interval.
            try supervisor.start(ChildSpec(
                name: "scrape", executable: "/usr/bin/nice",
                arguments: ["-n", String(BatchNiceness.workers), executable, "scrape", "--data", data.data, "--engine", apiEngine, "--collection", scrapeCollection,
                            "--site", site, "--interval", scrapeInterval, "--skip-first-if-populated"],
                stopTimeoutSeconds: 30))
        }
        // The bot gateway needs the key that seals bot tokens; without one there is nothing it could start.
        if botsEnabled {
            var botsArguments = ["bots", "--data", data.data, "--engine", apiEngine, "--listen", botsListen]
            if let botsKeyFile { botsArguments += ["--key-file", botsKeyFile] }
            if let apiKeyFile { botsArguments += ["--api-key-file", apiKeyFile] }
            if let botsTelegramAPI { botsArguments += ["--telegram-api", botsTelegramAPI] }
            botsArguments += answers.arguments
            try supervisor.start(ChildSpec(name: "bots", executable: executable, arguments: botsArguments, stopTimeoutSeconds: 15))
        }
        await client.close()
        logger.notice("""
            Sextant is up.
              web page:                 http://\(apiListen)/
              search API:               http://\(apiListen)/v1/collections/{name}/search
              ChromaDB-compatible API:  http://\(apiListen)  (chromadb.HttpClient(host, port))
              engine:                   \(engineListen)
              inbox (CSV → \(ingestCollection)):  \(noIngest ? "off" : root + "/inbox, every " + ingestInterval)
              scraper (site → \(scrapeCollection)):  \(site.map { $0 + ", every " + scrapeInterval } ?? "off (--site URL)")
              bot gateway admin:        \(botsEnabled ? "http://" + botsListen : "off (set SEXTANT_BOTS_KEY)")
              data:                     \(data.data)
            Ctrl-C stops everything (the engine checkpoints last).
            """)
        let periodic = backups.map { $0.periodic(engine: apiEngine, token: nil) }
        let signal = await Signals.wait()
        logger.notice("received signal \(signal); stopping")
        periodic?.cancel()
        if let backups {
            // Stop taking writes (API and worker first), back up what the engine
            // holds, then let the engine checkpoint and exit. Incremental, so
            // it fits the platform's shutdown grace period.
            supervisor.stop("api")
            supervisor.stop("ingest")
            supervisor.stop("scrape")
            supervisor.stop("bots")
            await backups.shutdownBackup(engine: apiEngine, token: nil)
        }
        supervisor.stopAll()
    }

    static func waitForEngine(_ address: String) async throws -> SextantClient {
        var lastError: (any Error)? = nil
        for _ in 0..<300 {
            do { return try await SextantClient.connect(to: address) } catch {
                lastError = error
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        throw ValidationError("the engine did not come up at \(address): \(lastError.map { "\($0)" } ?? "")")
    }
}
