import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import SextantAnswers
import SextantJSON

public struct BotsContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public init(source: ApplicationRequestContextSource) { coreContext = .init(source: source) }
    /// Bot configurations are small.
    public var maxUploadSize: Int { 64 * 1_024 }
}

/// The gateway's admin routes, all behind the API key when one is set:
///   GET /v1/bots · POST /v1/bots · GET|PATCH|DELETE /v1/bots/{id} ·
///   POST /v1/bots/{id}/start|stop · GET /v1/bots/{id}/conversations?limit=N ·
///   GET /v1/stats · GET /healthz (open)
/// Tokens go in, never out.
public enum AdminServer {
    public static func isLoopback(_ host: String) -> Bool { host == "localhost" || host == "::1" || host.hasPrefix("127.") }

    public static func run(gateway: BotGateway, host: String, port: Int, apiKey: String?, logger: Logger,
                           onListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        if !isLoopback(host) && (apiKey ?? "").isEmpty {
            throw BotError.configuration("the admin API needs --api-key-file to listen on \(host) (beyond loopback)")
        }
        let router = Router(context: BotsContext.self)
        router.add(middleware: KeyMiddleware(apiKey: apiKey))
        router.get("/healthz") { _, _ in json(.object(["status": .string("ok")])) }
        router.get("/v1/bots") { _, _ in try json(.array(gateway.store.list().map(Self.json))) }
        router.post("/v1/bots") { request, context in
            let settings = try settings(try await body(request, context))
            let bot = try gateway.store.create(settings)
            if bot.enabled { try gateway.start(bot.id) }
            return try json(Self.json(gateway.store.bot(bot.id)), status: .created)
        }
        router.get("/v1/bots/:id") { _, context in try json(Self.json(gateway.store.bot(try id(context)))) }
        router.patch("/v1/bots/:id") { request, context in
            let id = try id(context)
            let bot = try gateway.store.update(id, try settings(try await body(request, context)))
            // A changed bot restarts with its new settings; a disabled one stops.
            if gateway.runningIDs.contains(id) { try gateway.stop(id) }
            if bot.enabled { try gateway.start(id) }
            return try json(Self.json(gateway.store.bot(id)))
        }
        router.get("/v1/bots/:id/conversations") { request, context in
            let id = try id(context)
            _ = try gateway.store.bot(id)
            let limitText = request.uri.queryParameters.get("limit") ?? "50"
            guard let limit = Int(limitText), (1...500).contains(limit) else { throw BotError.invalid("'limit' must be in 1...500") }
            return try json(.array(gateway.store.recentTurns(bot: id, limit: limit).map { turn in
                .object(["chat": .string(turn.chat), "role": .string(turn.role), "text": .string(turn.text), "at": .double(turn.at)])
            }))
        }
        router.delete("/v1/bots/:id") { _, context in
            let id = try id(context)
            if gateway.runningIDs.contains(id) { try gateway.stop(id) }
            try gateway.store.delete(id)
            return Response(status: .noContent)
        }
        router.post("/v1/bots/:id/start") { _, context in
            let id = try id(context)
            _ = try gateway.store.update(id, { var s = BotSettings(); s.enabled = true; return s }())
            try gateway.start(id)
            return try json(Self.json(gateway.store.bot(id)))
        }
        router.post("/v1/bots/:id/stop") { _, context in
            let id = try id(context)
            _ = try gateway.store.update(id, { var s = BotSettings(); s.enabled = false; return s }())
            try gateway.stop(id)
            return try json(Self.json(gateway.store.bot(id)))
        }
        router.get("/v1/stats") { _, _ in
            let summary = gateway.latencySummary()
            return json(.object([
                "running": .int(Int64(gateway.runningIDs.count)), "replies": .int(Int64(summary.count)),
                "reply_p50_ms": .double(summary.p50Milliseconds), "reply_p99_ms": .double(summary.p99Milliseconds),
                "reply_max_ms": .double(summary.maxMilliseconds),
            ]))
        }
        router.post("/v1/stats/reset") { _, _ in
            gateway.resetLatency()
            return Response(status: .noContent)
        }
        let app = Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "sextant-bots"),
            onServerRunning: { channel in
                let bound = channel.localAddress?.port ?? port
                logger.notice("bot gateway admin API listening on http://\(host):\(bound)")
                onListening(bound)
            }, logger: logger)
        try await app.runService()
    }

    static func json(_ bot: BotRecord) -> JSONValue {
        .object([
            "id": .int(bot.id), "platform": .string(bot.platform.rawValue), "name": .string(bot.name), "collection": .string(bot.collection),
            "system_prompt": .string(bot.systemPrompt), "answer_style": .string(bot.answerStyle.rawValue), "enabled": .bool(bot.enabled),
            "status": .string(bot.status), "last_error": bot.lastError.map(JSONValue.string) ?? .null,
            "messages_answered": .int(Int64(bot.messagesAnswered)), "data_sequence": .int(bot.dataSequence),
        ])
    }

    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: JSON.serializeBytes(value))))
    }

    static func id(_ context: BotsContext) throws -> Int64 {
        guard let id = context.parameters.get("id").flatMap(Int64.init) else { throw BotError.invalid("bot id must be an integer") }
        return id
    }

    static func body(_ request: Request, _ context: BotsContext) async throws -> JSONValue {
        let buffer: ByteBuffer
        do { buffer = try await request.body.collect(upTo: context.maxUploadSize) } catch {
            throw BotError.invalid("body larger than \(context.maxUploadSize) bytes")
        }
        do { return try JSON.parse(Array(buffer.readableBytesView)) } catch { throw BotError.invalid("body is not JSON: \(error)") }
    }

    static func settings(_ body: JSONValue) throws -> BotSettings {
        guard let object = body.objectValue else { throw BotError.invalid("body must be a JSON object") }
        let known: Set<String> = ["platform", "name", "token", "collection", "system_prompt", "answer_style", "enabled"]
        if let unknown = object.keys.first(where: { !known.contains($0) }) { throw BotError.invalid("unknown field '\(unknown)'") }
        func string(_ key: String) throws -> String? {
            guard let value = object[key], !value.isNull else { return nil }
            guard let text = value.stringValue else { throw BotError.invalid("'\(key)' must be a string") }
            return text
        }
        var settings = BotSettings()
        if let platform = try string("platform") {
            guard let parsed = Platform(rawValue: platform) else { throw BotError.invalid("'platform' must be telegram or discord") }
            settings.platform = parsed
        }
        settings.name = try string("name")
        settings.token = try string("token")
        settings.collection = try string("collection")
        settings.systemPrompt = try string("system_prompt")
        if let style = try string("answer_style") {
            guard let parsed = ComposedAnswer.Style(rawValue: style) else { throw BotError.invalid("'answer_style' must be extractive or llm") }
            settings.answerStyle = parsed
        }
        if let value = object["enabled"], !value.isNull {
            guard let flag = value.boolValue else { throw BotError.invalid("'enabled' must be true or false") }
            settings.enabled = flag
        }
        return settings
    }
}

/// Every route but /healthz needs `Authorization: Bearer KEY` when a key is set;
/// bot errors become typed JSON errors with 4xx statuses.
struct KeyMiddleware: RouterMiddleware {
    typealias Context = BotsContext
    let apiKey: String?

    func handle(_ request: Request, context: BotsContext, next: (Request, BotsContext) async throws -> Response) async throws -> Response {
        if let apiKey, request.uri.path != "/healthz" {
            let presented = request.headers[.authorization].flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil } ?? ""
            guard presented.utf8.count == apiKey.utf8.count, zip(presented.utf8, apiKey.utf8).reduce(UInt8(0), { $0 | ($1.0 ^ $1.1) }) == 0
            else { return AdminServer.json(.object(["error": .string("unauthenticated"), "message": .string("this route needs the API key")]), status: .unauthorized) }
        }
        do { return try await next(request, context) } catch let error as BotError {
            let (status, code): (HTTPResponse.Status, String) = switch error {
            case .notFound: (.notFound, "not_found")
            case .invalid: (.badRequest, "invalid_argument")
            case .configuration: (.conflict, "failed_precondition")
            case .platform: (.badGateway, "platform")
            }
            return AdminServer.json(.object(["error": .string(code), "message": .string(error.description)]), status: status)
        }
    }
}
