import ArgumentParser
import SextantConcurrency
import Foundation
import NIOCore
import NIOPosix
import SextantAPI
import SextantAnswers
import SextantRemoteModels
import SextantClient
import SextantEmbedding
import SextantMiniLM

/// The embedders this process offers: the built-in hashing one always; more
/// (all-MiniLM-L6-v2, remote APIs) are registered where available.
enum Embedders {
    /// all-MiniLM-L6-v2 becomes the default wherever its weights are installed
    /// (tools/setup does it); the hashing embedder stays available by name.
    static func registry() -> EmbedderRegistry {
        if let directory = MiniLMEmbedder.locateModel(), let miniLM = try? MiniLMEmbedder(modelDirectory: directory) {
            var registry = EmbedderRegistry(default: miniLM)
            registry.register(HashingEmbedder())
            return registry
        }
        return EmbedderRegistry(default: HashingEmbedder())
    }
}

struct APICommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "api", abstract: "Run the search API: native search, feedback, the ChromaDB-compatible REST API, the web page.")

    @OptionGroup var data: DataOptions
    @OptionGroup var engine: EngineOptions
    @Option(help: "Address to listen on (host:port).") var listen = "127.0.0.1:8080"
    @Option(name: .customLong("api-key-file"), help: "File holding the API key that write, admin and export routes require.")
    var apiKeyFile: String?
    @Flag(name: .customLong("protect-search"), help: "Require the API key for search routes too.") var protectSearch = false
    @Option(name: .customLong("tls-cert"), help: "PEM certificate chain: serve HTTPS (TLS 1.3).") var tlsCert: String?
    @Option(name: .customLong("tls-key"), help: "PEM private key for --tls-cert.") var tlsKey: String?
    @Option(name: .customLong("max-in-flight"), help: "Requests worked on at once; past it, 429 with Retry-After.")
    var maxInFlight = APILimits.defaultMaximumInFlight
    @Option(name: .customLong("idle-timeout-seconds"), help: "A connection idle (nothing read or written) this long is closed.")
    var idleTimeoutSeconds: Int64 = 60
    @Option(name: .customLong("request-read-timeout-seconds"),
            help: "A request whose head and body have not all arrived this long after its first byte is cut off (slow clients).")
    var requestReadTimeoutSeconds: Int64 = 30
    @Option(name: .customLong("bots"), help: "The bot gateway's admin address (http://host:port): the page manages bots through it.")
    var bots: String?
    @OptionGroup var answers: AnswerOptions

    func validate() throws {
        // Run Swift concurrency's tasks on NIO's event loops, so a request does
        // not hop from the HTTP loop to the global pool and on to the engine
        // connection's loop (measured in docs/BENCHMARKS.md). Parsing
        // runs on the main thread before any of the API's tasks exist, which is
        // what the hook requires; only `api` wants it (the engine keeps its own
        // threads for search and the WAL).
        NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    }

    func run() async throws {
        let logger = Logs.make("sextant.api")
        // Searches run on these loops, next to the engine on a small host: short slices.
        for loop in MultiThreadedEventLoopGroup.singleton.makeIterator() { loop.execute { LatencySensitive.markCurrentThread() } }
        guard case .tcp(let host, let port) = try EngineAddress(parsing: listen) else { throw ValidationError("--listen takes host:port") }
        var configuration = APIConfiguration(
            engineAddress: engine.engine, feedbackDatabasePath: data.data + "/api/feedback.sqlite", embedders: Embedders.registry())
        configuration.engineToken = try Secrets.read(engine.tokenFile)
        configuration.ingestLedgerPath = data.data + "/ingest/ledger.sqlite"
        configuration.scrapeStatePath = data.data + "/scraper/state.sqlite"
        configuration.host = host
        configuration.port = port
        configuration.apiKey = try Secrets.read(apiKeyFile)
        configuration.protectSearch = protectSearch
        configuration.tlsCertificatePath = tlsCert
        configuration.tlsKeyPath = tlsKey
        configuration.engineCAFile = engine.engineCAFile
        guard (1...100_000).contains(maxInFlight) else { throw ValidationError("--max-in-flight must be in 1...100000") }
        configuration.maximumInFlight = maxInFlight
        guard (1...86_400).contains(idleTimeoutSeconds) else { throw ValidationError("--idle-timeout-seconds must be in 1...86400") }
        configuration.idleTimeoutSeconds = idleTimeoutSeconds
        guard (1...3_600).contains(requestReadTimeoutSeconds) else {
            throw ValidationError("--request-read-timeout-seconds must be in 1...3600")
        }
        configuration.requestReadTimeoutSeconds = requestReadTimeoutSeconds
        configuration.botsAdminURL = bots.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        configuration.answerTimeoutMilliseconds = answers.answerTimeoutMilliseconds
        configuration.answerModel = try answers.model()
        if protectSearch && configuration.apiKey == nil { throw ValidationError("--protect-search needs --api-key-file") }
        do { try await APIServer.run(configuration, logger: logger) } catch let error as APIStartError {
            throw ValidationError(error.description)
        }
    }
}
