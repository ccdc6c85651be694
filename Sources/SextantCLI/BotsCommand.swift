import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SextantAnswers
import SextantBots
import SextantClient
import SextantRemoteModels

/// `sextant bots`: the bot gateway.
struct BotsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bots",
        abstract: "Run the bot gateway: users' Telegram and Discord bots answering from the knowledge base.",
        discussion: """
            Bot configurations, running state and conversations live in ROOT/bots/bots.sqlite; tokens are \
            encrypted with the key from --key-file or $SEXTANT_BOTS_KEY. Manage bots with `sextant bot` or \
            the admin routes (docs/BOTS.md).
            """)

    @OptionGroup var data: DataOptions
    @OptionGroup var engine: EngineOptions
    @Option(help: "Admin API address.") var listen = "127.0.0.1:8090"
    @Option(name: .customLong("api-key-file"), help: "API key for the admin routes (required beyond loopback).") var apiKeyFile: String?
    @Option(name: .customLong("key-file"), help: "Key that encrypts bot tokens at rest (default: $SEXTANT_BOTS_KEY).") var keyFile: String?
    @Option(name: .customLong("telegram-api"), help: "Telegram Bot API base URL.") var telegramAPI = "https://api.telegram.org"
    @Option(name: .customLong("discord-api"), help: "Discord REST base URL (the Gateway URL comes from GET /gateway/bot).")
    var discordAPI = "https://discord.com/api/v10"
    @Option(name: .customLong("poll-seconds"), help: "Long-poll length of getUpdates.") var pollSeconds: Int64 = 25
    @Option(name: .customLong("watch-ms"), help: "How often collections' update events are checked.") var watchMilliseconds = 2_000
    @Option(name: .customLong("retry-base-ms"), help: "First backoff after a bot fails (doubles up to 5 minutes).") var retryBaseMilliseconds = 1_000
    @OptionGroup var answers: AnswerOptions

    func run() async throws {
        let logger = Logs.make("sextant.bots")
        let parts = listen.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]) else { throw ValidationError("--listen takes host:port") }
        let secrets: SecretBox?
        do { secrets = try SecretBox.load(keyFile: keyFile) } catch { throw ValidationError(error.description) }
        if secrets == nil { logger.warning("no token key (\(SecretBox.environmentVariable) or --key-file): bots cannot be created or started") }
        let store = try BotStore(path: data.data + "/bots/bots.sqlite", secrets: secrets)
        let model = try answers.model()
        let client = try await engine.connect()
        var settings = AnswerComposer.Settings()
        settings.llmTimeoutMilliseconds = answers.answerTimeoutMilliseconds
        let composer = AnswerComposer(client: client, embedders: Embedders.registry(), model: model, settings: settings)
        var gatewayConfiguration = GatewayConfiguration()
        gatewayConfiguration.telegramBaseURL = telegramAPI.hasSuffix("/") ? String(telegramAPI.dropLast()) : telegramAPI
        gatewayConfiguration.discordAPIBaseURL = discordAPI.hasSuffix("/") ? String(discordAPI.dropLast()) : discordAPI
        gatewayConfiguration.pollTimeoutSeconds = pollSeconds
        gatewayConfiguration.updateWatchMilliseconds = watchMilliseconds
        gatewayConfiguration.retryBaseMilliseconds = retryBaseMilliseconds
        let gateway = BotGateway(store: store, composer: composer, client: client, configuration: gatewayConfiguration, logger: logger)
        if secrets != nil { try gateway.startEnabled() }
        let watcher = Task { await gateway.watchUpdates() }
        do {
            try await AdminServer.run(gateway: gateway, host: String(parts[0]), port: port, apiKey: try Secrets.read(apiKeyFile), logger: logger)
        } catch let error as BotError { throw ValidationError(error.description) }
        watcher.cancel()
        await gateway.shutdown()
        await client.close()
    }
}

/// `sextant bot`: the admin routes from the command line.
struct BotCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bot", abstract: "Manage the bot gateway's bots: list, add, update, remove, start, stop.",
        subcommands: [List.self, Add.self, Update.self, Remove.self, Start.self, Stop.self])

    struct Target: ParsableArguments {
        @Option(help: "The gateway's admin API.") var gateway = "http://127.0.0.1:8090"
        @Option(name: .customLong("api-key-file"), help: "The gateway's API key.") var apiKeyFile: String?

        func call(_ method: HTTPMethod, _ path: String, body: [String: Any]? = nil) async throws {
            var request = HTTPClientRequest(url: gateway + path)
            request.method = method
            if let key = try Secrets.read(apiKeyFile) { request.headers.add(name: "Authorization", value: "Bearer " + key) }
            if let body {
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
            }
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            let text = String(buffer: try await response.body.collect(upTo: 4 << 20))
            if !text.isEmpty { print(text) }
            guard (200..<300).contains(response.status.code) else { throw ExitCode(1) }
        }
    }

    struct List: AsyncParsableCommand {
        @OptionGroup var target: Target
        func run() async throws { try await target.call(.GET, "/v1/bots") }
    }

    struct Fields: ParsableArguments {
        @Option(help: "Bot name ([A-Za-z0-9_-], unique).") var name: String?
        @Option(name: .customLong("token-file"), help: "File holding the platform token (never passed on the command line).")
        var tokenFile: String?
        @Option(help: "Collection the bot answers from.") var collection: String?
        @Option(name: .customLong("system-prompt"), help: "Instructions for LLM answers.") var systemPrompt: String?
        @Option(name: .customLong("answer-style"), help: "extractive or llm.") var answerStyle: String?

        func body() throws -> [String: Any] {
            var body: [String: Any] = [:]
            if let name { body["name"] = name }
            if let token = try Secrets.read(tokenFile) { body["token"] = token }
            if let collection { body["collection"] = collection }
            if let systemPrompt { body["system_prompt"] = systemPrompt }
            if let answerStyle { body["answer_style"] = answerStyle }
            return body
        }
    }

    struct Add: AsyncParsableCommand {
        @OptionGroup var target: Target
        @OptionGroup var fields: Fields
        @Option(help: "telegram or discord.") var platform = "telegram"
        @Flag(help: "Create it stopped.") var disabled = false
        func run() async throws {
            var body = try fields.body()
            body["platform"] = platform
            body["enabled"] = !disabled
            try await target.call(.POST, "/v1/bots", body: body)
        }
    }

    struct Update: AsyncParsableCommand {
        @OptionGroup var target: Target
        @Argument(help: "Bot id.") var id: Int
        @OptionGroup var fields: Fields
        func run() async throws { try await target.call(.PATCH, "/v1/bots/\(id)", body: try fields.body()) }
    }

    struct Remove: AsyncParsableCommand {
        @OptionGroup var target: Target
        @Argument(help: "Bot id.") var id: Int
        func run() async throws { try await target.call(.DELETE, "/v1/bots/\(id)") }
    }

    struct Start: AsyncParsableCommand {
        @OptionGroup var target: Target
        @Argument(help: "Bot id.") var id: Int
        func run() async throws { try await target.call(.POST, "/v1/bots/\(id)/start") }
    }

    struct Stop: AsyncParsableCommand {
        @OptionGroup var target: Target
        @Argument(help: "Bot id.") var id: Int
        func run() async throws { try await target.call(.POST, "/v1/bots/\(id)/stop") }
    }
}
