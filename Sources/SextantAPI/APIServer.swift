import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOPosix
import SextantAnswers
import SextantClient
import SextantEmbedding
import SextantJSON
import SextantProtocol

public struct APIConfiguration: Sendable {
    public var engineAddress: String
    public var engineToken: String?
    public var host = "127.0.0.1"
    public var port = 8080
    /// With a key, write, admin and export routes require it; without one the
    /// API serves loopback only.
    public var apiKey: String?
    public var protectSearch = false
    public var feedbackDatabasePath: String
    /// The ingestion worker's ledger (ROOT/ingest/ledger.sqlite), read for
    /// `GET /v1/ingest/runs`; nil or absent: no runs to report.
    public var ingestLedgerPath: String?
    /// The scraper's state (ROOT/scraper/state.sqlite), for its runs in the same route.
    public var scrapeStatePath: String?
    public var embedders: EmbedderRegistry
    /// Engine connections in the API's pool.
    public var engineConnections = 4
    /// The LLM for chat answers in the `llm` style (nil: extractive answers only).
    public var answerModel: AnswerModel?
    /// How long an LLM answer may take before the extractive one is returned.
    public var answerTimeoutMilliseconds: Int64 = 15_000
    /// Certificate chain and key (PEM): serve HTTPS (TLS 1.3) instead of HTTP.
    public var tlsCertificatePath: String?
    public var tlsKeyPath: String?
    /// Requests worked on at once; past it, 429 with Retry-After.
    public var maximumInFlight = APILimits.defaultMaximumInFlight
    /// A connection idle (nothing read or written) this long is closed.
    public var idleTimeoutSeconds: Int64 = 60
    /// Seconds from a request's first byte to its last (head and body) before the connection is closed.
    public var requestReadTimeoutSeconds: Int64 = 30
    /// The bot gateway's admin address (http://host:port) for the page's bots view; nil: none runs.
    public var botsAdminURL: String?
    /// The CA that signed the engine's certificate, for a `tls://` engine address
    /// (nil: $SEXTANT_ENGINE_CA_FILE, then the system's store).
    public var engineCAFile: String?

    public init(engineAddress: String, feedbackDatabasePath: String, embedders: EmbedderRegistry) {
        self.engineAddress = engineAddress
        self.feedbackDatabasePath = feedbackDatabasePath
        self.embedders = embedders
    }
}

public enum APIStartError: Error, CustomStringConvertible {
    case keyRequired(String)
    case tlsIncomplete
    public var description: String {
        switch self {
        case .keyRequired(let host):
            return "refusing to listen on \(host) without an API key: only loopback is served without one (use --api-key-file)"
        case .tlsIncomplete:
            return "HTTPS needs both a certificate and a key (--tls-cert and --tls-key)"
        }
    }
}

/// The search API: native search and feedback, the ChromaDB-compatible REST
/// API, the web page, health, readiness and metrics. Stateless: its only state
/// is in the engine and the feedback store, so several copies can run side by side.
public enum APIServer {
    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// Runs until SIGTERM / SIGINT; `onListening` receives the bound port.
    public static func run(_ configuration: APIConfiguration, logger: Logger,
                           onListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        if !isLoopback(configuration.host) && (configuration.apiKey ?? "").isEmpty {
            throw APIStartError.keyRequired(configuration.host)
        }
        var clientConfiguration = try ClientConfiguration(endpoints: configuration.engineAddress, token: configuration.engineToken)
        clientConfiguration.connections = configuration.engineConnections
        clientConfiguration.clientName = "sextant-api"
        if let caFile = configuration.engineCAFile { clientConfiguration.caFile = caFile }
        // The same event loops as the HTTP server (Hummingbird's default is the
        // singleton group): a search hops between fewer threads.
        clientConfiguration.eventLoopGroup = MultiThreadedEventLoopGroup.singleton
        clientConfiguration.timeoutMilliseconds = 30_000
        let client = try await connectPatiently(clientConfiguration, logger: logger)
        let metrics = MetricsRegistry()
        let engine = EngineGateway(client: client, metrics: metrics)
        let feedback = try FeedbackStore(path: configuration.feedbackDatabasePath)
        var answerSettings = AnswerComposer.Settings()
        answerSettings.llmTimeoutMilliseconds = configuration.answerTimeoutMilliseconds
        let composer = AnswerComposer(client: client, embedders: configuration.embedders, model: configuration.answerModel,
                                      settings: answerSettings)
        let router = buildRouter(engine: engine, embedders: configuration.embedders, feedback: feedback, metrics: metrics, composer: composer,
                                 apiKey: configuration.apiKey, protectSearch: configuration.protectSearch,
                                 ingestLedgerPath: configuration.ingestLedgerPath, scrapeStatePath: configuration.scrapeStatePath,
                                 botsAdminURL: configuration.botsAdminURL, maximumInFlight: configuration.maximumInFlight)
        guard (configuration.tlsCertificatePath == nil) == (configuration.tlsKeyPath == nil) else { throw APIStartError.tlsIncomplete }
        // A connection that sends and receives nothing for this long is closed:
        // ten thousand clients that connect and wait cost descriptors only for a while.
        // And a request must arrive whole within its own deadline: the idle timeout
        // is reset by every byte, so it cannot stop a client that trickles them.
        let readTimeout = TimeAmount.seconds(configuration.requestReadTimeoutSeconds)
        let http = HTTP1Channel.Configuration(
            additionalChannelHandlers: [RequestDeadlineHandler(timeout: readTimeout)],
            idleTimeout: .seconds(configuration.idleTimeoutSeconds))
        var server = HTTPServerBuilder.http1(configuration: http)
        if let certificate = configuration.tlsCertificatePath, let key = configuration.tlsKeyPath {
            server = try .tls(.http1(configuration: http),
                              tlsConfiguration: SextantTLS.serverConfiguration(certificatePath: certificate, keyPath: key))
        }
        let scheme = configuration.tlsCertificatePath == nil ? "http" : "https"
        let app = Application(
            router: router, server: server,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "sextant-api"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? configuration.port
                logger.notice("search API listening on \(scheme)://\(configuration.host):\(port)")
                onListening(port)
            },
            logger: logger)
        try await app.runService()
        await client.close()
    }

    /// The engine may still be starting (sextant up starts both): retry for a while.
    static func connectPatiently(_ configuration: ClientConfiguration, logger: Logger) async throws -> SextantClient {
        var lastError: (any Error)? = nil
        for attempt in 0..<100 {
            do { return try await SextantClient.connect(configuration) } catch let error as SextantError where error.code == .unavailable {
                lastError = error
                if attempt % 20 == 0 { logger.notice("waiting for the engine at \(configuration.address)") }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        throw lastError ?? SextantError(.unavailable, "engine unreachable")
    }

    public static func buildRouter(engine: EngineGateway, embedders: EmbedderRegistry, feedback: FeedbackStore,
                                   metrics: MetricsRegistry, composer: AnswerComposer, apiKey: String?, protectSearch: Bool,
                                   ingestLedgerPath: String? = nil, scrapeStatePath: String? = nil,
                                   botsAdminURL: String? = nil,
                                   maximumInFlight: Int = APILimits.defaultMaximumInFlight) -> Router<APIContext> {
        let router = Router(context: APIContext.self)
        router.add(middleware: ObservingMiddleware(metrics: metrics))
        router.add(middleware: InFlightLimitMiddleware(limiter: InFlightLimiter(maximum: maximumInFlight)))
        router.add(middleware: AuthMiddleware(apiKey: apiKey, protectSearch: protectSearch))
        router.get("/healthz") { _, _ in Reply.json(.object(["status": .string("ok")])) }
        router.get("/readyz") { _, _ in
            do {
                _ = try await engine.time("Heartbeat") { try await engine.client.heartbeat() }
                return Reply.json(.object(["status": .string("ready"), "engine": .string("reachable")]))
            } catch {
                return Reply.json(.object(["status": .string("not ready"), "engine": .string("\(error)")]), status: .serviceUnavailable)
            }
        }
        router.get("/metrics") { _, _ in
            let positions = ReplicationMetrics.render(await engine.client.statsByEndpoint())
            return Reply.text(metrics.render() + IngestMetrics.render(ledgerPath: ingestLedgerPath) + positions,
                              contentType: "text/plain; version=0.0.4; charset=utf-8")
        }
        router.get("/") { _, _ in Reply.text(WebPage.html, contentType: "text/html; charset=utf-8") }
        NativeRoutes(engine: engine, embedders: embedders, feedback: feedback, ingestLedgerPath: ingestLedgerPath,
                     scrapeStatePath: scrapeStatePath).register(on: router)
        ChatRoutes(composer: composer).register(on: router)
        ChromaRoutes(engine: engine).register(on: router)
        BotsProxy(gatewayURL: botsAdminURL, apiKey: apiKey).register(on: router)
        return router
    }
}
