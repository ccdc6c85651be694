import ArgumentParser
import Foundation
import SextantClient
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

    func run() async throws {
        let logger = Logs.make("sextant.up")
        let executable = CommandLine.arguments[0].hasPrefix("/")
            ? CommandLine.arguments[0] : FileManager.default.currentDirectoryPath + "/" + CommandLine.arguments[0]
        try FileManager.default.createDirectory(atPath: data.data, withIntermediateDirectories: true)
        let supervisor = Supervisor(logger: logger)
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
            var ingestArguments = ["-n", "10", executable, "ingest", "--data", data.data, "--engine", apiEngine,
                                   "--collection", ingestCollection, "--source", root + "/inbox", "--interval", ingestInterval,
                                   "--no-progress"]
            if let ingestMapping { ingestArguments += ["--mapping", ingestMapping] }
            try FileManager.default.createDirectory(atPath: root + "/inbox", withIntermediateDirectories: true)
            try supervisor.start(ChildSpec(name: "ingest", executable: "/usr/bin/nice", arguments: ingestArguments,
                                           stopTimeoutSeconds: 30))
        }
        await client.close()
        logger.notice("""
            Sextant is up.
              web page:                 http://\(apiListen)/
              search API:               http://\(apiListen)/v1/collections/{name}/search
              ChromaDB-compatible API:  http://\(apiListen)  (chromadb.HttpClient(host, port))
              engine:                   \(engineListen)
              inbox (CSV → \(ingestCollection)):  \(noIngest ? "off" : root + "/inbox, every " + ingestInterval)
              data:                     \(data.data)
            Ctrl-C stops everything (the engine checkpoints last).
            """)
        let signal = await Signals.wait()
        logger.notice("received signal \(signal); stopping")
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
