import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOWebSocket
import SextantAnswers
import SextantJSON
import SextantSupport
import Synchronization
import WSClient

enum DiscordError: Error, Sendable, CustomStringConvertible {
    case unauthorized(String)
    case fatal(String)
    case transport(String)

    var description: String {
        switch self {
        case .unauthorized(let message): return "token rejected: \(message)"
        case .fatal(let message): return message
        case .transport(let message): return message
        }
    }
}

/// Discord's REST API with its rate limits honoured: each response names its
/// bucket and what is left in it; a route whose bucket is empty waits for the
/// reset before its next request, and a 429 waits `retry_after`.
final class DiscordREST: Sendable {
    let baseURL: String
    let token: String
    let http: HTTPClient
    let logger: Logger

    /// Discord's limit on one message's content.
    static let maximumMessageCharacters = 2_000
    static let userAgent = "DiscordBot (https://github.com/sextant-db/sextant, 0.1)"
    /// REST calls: 5 attempts; transport errors and 5xx wait 500 ms doubling, a 429 its `retry_after`.
    static let retry = RetryPolicy(attempts: 5, initialDelayMilliseconds: 500, maximumDelayMilliseconds: 8_000)
    /// Gateway events waiting to be handled on one connection.
    static let maximumQueuedEvents = 10_000

    struct Bucket {
        var remaining: Int
        var resetAt: ContinuousClock.Instant
    }

    /// route → bucket id (from X-RateLimit-Bucket), bucket id → state.
    private let routes = Mutex<[String: String]>([:])
    private let buckets = Mutex<[String: Bucket]>([:])

    init(baseURL: String, token: String, http: HTTPClient, logger: Logger) {
        self.baseURL = baseURL
        self.token = token
        self.http = http
        self.logger = logger
    }

    func request(_ method: HTTPMethod, _ path: String, route: String, body: JSONValue? = nil) async throws -> JSONValue {
        do {
            return try await Self.retry.run({ _ in try await requestOnce(method, path, route: route, body: body) }, classify: { error in
                guard let passing = error as? Passing else { return .fail }
                return passing.retryAfterMilliseconds.map { .retryAfter(milliseconds: $0) } ?? .retry
            })
        } catch let passing as Passing {
            throw passing.error
        }
    }

    /// A 429, 5xx or transport failure: worth another attempt.
    private struct Passing: Error {
        let error: DiscordError
        let retryAfterMilliseconds: Int64?
    }

    private func requestOnce(_ method: HTTPMethod, _ path: String, route: String, body: JSONValue?) async throws -> JSONValue {
        // Wait out an empty bucket before asking (the limit Discord announced, not a 429 after the fact).
        if let bucketID = routes.withLock({ $0[route] }), let bucket = buckets.withLock({ $0[bucketID] }),
           bucket.remaining <= 0, bucket.resetAt > .now {
            try await Task.sleep(until: bucket.resetAt, clock: .continuous)
        }
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bot " + token)
        request.headers.add(name: "User-Agent", value: Self.userAgent)
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: JSON.serializeBytes(body)))
        }
        let response: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            response = try await http.execute(request, timeout: .seconds(30))
            bytes = try await response.body.collect(upTo: 8 << 20)
        } catch {
            throw Passing(error: .transport("\(method) \(route): \(type(of: error)) (network error)"), retryAfterMilliseconds: nil)
        }
        record(response.headers, route: route)
        let reply = (try? JSON.parse(Array(bytes.readableBytesView))) ?? .null
        let status = Int(response.status.code)
        let failure = DiscordError.transport("\(method) \(route): HTTP \(status) \(reply["message"]?.stringValue ?? "")")
        switch status {
        case 200..<300: return reply
        case 401: throw DiscordError.unauthorized(reply["message"]?.stringValue ?? "401 Unauthorized")
        case 429:
            let seconds = reply["retry_after"]?.doubleValue ?? 1
            logger.warning("Discord rate limit on \(route)\(reply["global"]?.boolValue == true ? " (global)" : ""): waiting \(seconds) s")
            throw Passing(error: failure, retryAfterMilliseconds: Int64(max(0.05, seconds) * 1_000))
        case 500..<600: throw Passing(error: failure, retryAfterMilliseconds: nil)
        default: throw failure
        }
    }

    private func record(_ headers: HTTPHeaders, route: String) {
        guard let bucketID = headers.first(name: "x-ratelimit-bucket"),
              let remaining = headers.first(name: "x-ratelimit-remaining").flatMap(Int.init),
              let resetAfter = headers.first(name: "x-ratelimit-reset-after").flatMap(Double.init)
        else { return }
        routes.withLock { $0[route] = bucketID }
        buckets.withLock { $0[bucketID] = Bucket(remaining: remaining, resetAt: .now + .milliseconds(Int64(resetAfter * 1_000))) }
    }

    /// Discord markdown: the characters that would start formatting are escaped.
    static func escape(_ text: String) -> String {
        var output = ""
        for character in text {
            if "\\*_~`|>[]".contains(character) { output.append("\\") }
            output.append(character)
        }
        return output
    }

    /// Cuts `text` into messages of at most 2,000 characters at line or word boundaries.
    static func split(_ text: String, limit: Int = maximumMessageCharacters) -> [String] {
        var messages: [String] = []
        var rest = Substring(text)
        while rest.count > limit {
            let window = rest.prefix(limit)
            let cut = window.lastIndex(of: "\n").flatMap { window.distance(from: window.startIndex, to: $0) > limit / 2 ? $0 : nil }
                ?? window.lastIndex(of: " ").flatMap { window.distance(from: window.startIndex, to: $0) > limit / 2 ? $0 : nil }
                ?? window.endIndex
            // Never leave a lone escaping backslash at the end of a message.
            var end = cut
            if end > rest.startIndex, rest[rest.index(before: end)] == "\\" { end = rest.index(before: end) }
            messages.append(String(rest[..<end]))
            rest = rest[end...].drop(while: { $0 == " " || $0 == "\n" })
        }
        if !rest.isEmpty { messages.append(String(rest)) }
        return messages
    }
}

/// How one gateway connection ended.
enum DiscordOutcome: Sendable {
    /// Reconnect and resume the session.
    case resume
    /// The session is gone: identify anew.
    case identify
    /// The bot was asked to restart (fresh data) or stop.
    case restart
}

/// What one gateway connection's tasks (reader, heartbeat, watcher) share.
final class DiscordLink: Sendable {
    struct State {
        var sequence: Int64?
        var acknowledged = true
        var session: BotStore.DiscordSession?
        var selfID: String?
        var outcome = DiscordOutcome.resume
    }

    let state: Mutex<State>

    init(session: BotStore.DiscordSession?) {
        state = Mutex(State(sequence: session?.sequence, session: session, selfID: session?.userID))
    }
}

extension BotGateway {
    /// The Discord Gateway (v10, JSON): Hello → Identify (or Resume) → Ready,
    /// heartbeats at the interval Hello gives (a missed ACK means a zombie
    /// connection: reconnect and resume), MESSAGE_CREATE for direct messages
    /// and mentions, answered over REST.
    func runDiscord(_ bot: BotRecord, generation: Int) async throws {
        let token = try store.token(bot.id)
        let rest = DiscordREST(baseURL: configuration.discordAPIBaseURL, token: token, http: http, logger: logger)
        let info = try await rest.request(.GET, "/gateway/bot", route: "gateway")
        guard let gatewayURL = info["url"]?.stringValue else { throw DiscordError.fatal("/gateway/bot returned no url") }
        while !Task.isCancelled && self.generation(bot.id) == generation {
            let session = try store.discordSession(bot.id)
            let url = (session?.resumeURL ?? gatewayURL) + "/?v=10&encoding=json"
            let outcome = try await discordConnection(bot, url: url, token: token, session: session, rest: rest, generation: generation)
            switch outcome {
            case .restart: return
            case .identify:
                try store.saveDiscordSession(bot.id, nil)
            case .resume:
                try await Task.sleep(for: .milliseconds(configuration.retryBaseMilliseconds))
            }
        }
    }

    func discordConnection(_ bot: BotRecord, url: String, token: String, session: BotStore.DiscordSession?, rest: DiscordREST,
                           generation: Int) async throws -> DiscordOutcome {
        let link = DiscordLink(session: session)
        var wsConfiguration = WebSocketClientConfiguration(maxFrameSize: 1 << 20)
        wsConfiguration.closeTimeout = .seconds(2)
        let close = try await WebSocketClient.connect(url: url, configuration: wsConfiguration, logger: logger) { inbound, outbound, _ in
            func send(_ value: JSONValue) async throws { try await outbound.write(.text(JSON.serialize(value))) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                // Watches for a stop or a restart request: closes the socket so the read loop ends.
                group.addTask {
                    while !Task.isCancelled && self.generation(bot.id) == generation {
                        try await Task.sleep(for: .milliseconds(200))
                    }
                    link.state.withLock { $0.outcome = .restart }
                    try? await outbound.close(.normalClosure, reason: "restart")
                }
                // Dispatches are handled in order by a task of their own, so answering
                // (which may wait on a rate limit) never stops the reader from seeing
                // heartbeat ACKs. The queue is bounded; past the bound the connection
                // is dropped and resumed, and Discord replays what was not handled.
                let (events, queue) = AsyncStream<JSONValue>.makeStream(bufferingPolicy: .bufferingOldest(DiscordREST.maximumQueuedEvents))
                defer { queue.finish() }
                let handler = Task {
                    do {
                        for await payload in events { try await self.dispatch(bot, payload, rest: rest, link: link) }
                    } catch {
                        // An answer that could not be sent: end this connection; the event is
                        // replayed on resume because its sequence was never recorded.
                        try? await outbound.close(.unknown(4_000), reason: "handler failed")
                        throw error
                    }
                }
                var iterator = inbound.messages(maxSize: 1 << 20).makeAsyncIterator()
                while let message = try await iterator.next() {
                    guard case .text(let text) = message, let payload = try? JSON.parse(text) else { continue }
                    if let sequence = payload["s"]?.intValue { link.state.withLock { $0.sequence = sequence } }
                    switch payload["op"]?.intValue ?? -1 {
                    case 10:  // Hello
                        let interval = payload["d"]?["heartbeat_interval"]?.intValue ?? 41_250
                        group.addTask {
                            // The first beat after interval × jitter, as Discord asks; then every interval.
                            try await Task.sleep(for: .milliseconds(Int64(Double(interval) * Double.random(in: 0.1...1))))
                            while !Task.isCancelled {
                                let (sequence, acknowledged) = link.state.withLock { state in
                                    defer { state.acknowledged = false }
                                    return (state.sequence, state.acknowledged)
                                }
                                guard acknowledged else {
                                    self.logger.warning("bot \(bot.name): no heartbeat ACK; reconnecting")
                                    link.state.withLock { $0.outcome = .resume }
                                    try? await outbound.close(.unknown(4_000), reason: "zombie")
                                    return
                                }
                                try await send(.object(["op": .int(1), "d": sequence.map(JSONValue.int) ?? .null]))
                                try await Task.sleep(for: .milliseconds(interval))
                            }
                        }
                        if let session, let sequence = session.sequence {
                            try await send(.object(["op": .int(6), "d": .object([
                                "token": .string(token), "session_id": .string(session.sessionID), "seq": .int(sequence),
                            ])]))
                        } else {
                            try await send(.object(["op": .int(2), "d": .object([
                                "token": .string(token),
                                // GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT
                                "intents": .int((1 << 9) | (1 << 12) | (1 << 15)),
                                "properties": .object(["os": .string("linux"), "browser": .string("sextant"), "device": .string("sextant")]),
                            ])]))
                        }
                    case 11:  // Heartbeat ACK
                        link.state.withLock { $0.acknowledged = true }
                    case 1:  // The server asks for a heartbeat now.
                        try await send(.object(["op": .int(1), "d": link.state.withLock { $0.sequence }.map(JSONValue.int) ?? .null]))
                    case 7:  // Reconnect
                        link.state.withLock { $0.outcome = .resume }
                        try? await outbound.close(.unknown(4_000), reason: "reconnect requested")
                    case 9:  // Invalid session; d says whether it can be resumed.
                        link.state.withLock { $0.outcome = payload["d"]?.boolValue == true ? .resume : .identify }
                        try? await outbound.close(.unknown(4_000), reason: "invalid session")
                    case 0:
                        if case .dropped = queue.yield(payload) {
                            self.logger.warning("bot \(bot.name): more than \(DiscordREST.maximumQueuedEvents) events waiting; reconnecting to resume")
                            link.state.withLock { $0.outcome = .resume }
                            try? await outbound.close(.unknown(4_000), reason: "backlog")
                        }
                    default: break
                    }
                }
                // Received events are answered before the connection's tasks end.
                queue.finish()
                group.cancelAll()
                try await withTaskCancellationHandler { try await handler.value } onCancel: { handler.cancel() }
            }
        }
        if case .unknown(let code)? = close?.closeCode {
            switch code {
            case 4_004: throw DiscordError.unauthorized("authentication failed (4004)")
            case 4_010...4_014: throw DiscordError.fatal("gateway closed with \(code): \(close?.reason ?? "")")
            case 4_007, 4_009: return .identify  // invalid seq, session timed out
            default: break
            }
        }
        if self.generation(bot.id) != generation || Task.isCancelled { return .restart }
        return link.state.withLock { $0.outcome }
    }

    func dispatch(_ bot: BotRecord, _ payload: JSONValue, rest: DiscordREST, link: DiscordLink) async throws {
        let data = payload["d"] ?? .null
        switch payload["t"]?.stringValue ?? "" {
        case "READY":
            let session = BotStore.DiscordSession(
                sessionID: data["session_id"]?.stringValue ?? "", sequence: payload["s"]?.intValue ?? 0,
                resumeURL: data["resume_gateway_url"]?.stringValue, userID: data["user"]?["id"]?.stringValue)
            link.state.withLock { $0.session = session; $0.selfID = session.userID }
            try store.saveDiscordSession(bot.id, session)
            try store.setStatus(bot.id, "running")
            logger.notice("bot \(bot.name) running on Discord as \(data["user"]?["username"]?.stringValue ?? "?")")
        case "RESUMED":
            try store.setStatus(bot.id, "running")
            logger.info("bot \(bot.name) resumed its Discord session")
        case "MESSAGE_CREATE":
            guard data["author"]?["bot"]?.boolValue != true, let channel = data["channel_id"]?.stringValue,
                  var content = data["content"]?.stringValue else { return }
            let selfID = link.state.withLock { $0.selfID } ?? ""
            let direct = data["guild_id"] == nil || data["guild_id"]?.isNull == true
            let mentioned = (data["mentions"]?.arrayValue ?? []).contains { $0["id"]?.stringValue == selfID }
            let sequence = payload["s"]?.intValue
            guard direct || mentioned else {
                if let sequence { try store.saveDiscordSequence(bot.id, sequence) }
                return
            }
            let received = ContinuousClock.now
            for mention in ["<@\(selfID)>", "<@!\(selfID)>"] { content = content.replacingOccurrences(of: mention, with: "") }
            content = content.trimmingCharacters(in: .whitespacesAndNewlines)
            let outcome = try await compose(bot, question: content == "help" || content == "/help" ? "" : content, chat: channel)
            for (index, part) in DiscordREST.split(Self.discordText(outcome)).enumerated() {
                var body: [String: JSONValue] = ["content": .string(part), "allowed_mentions": .object(["parse": .array([])])]
                if index == 0, let messageID = data["id"]?.stringValue {
                    body["message_reference"] = .object(["message_id": .string(messageID), "fail_if_not_exists": .bool(false)])
                }
                _ = try await rest.request(.POST, "/channels/\(channel)/messages", route: "messages:\(channel)", body: .object(body))
            }
            try store.recordExchange(bot: bot.id, chat: channel, question: content, answer: outcome.text, sources: outcome.sourceIDs,
                                     cursor: sequence.map { .discord($0) } ?? .none)
            recordLatency(since: received)
        default:
            break
        }
    }

    /// Discord text for a reply: passages, then up to three sources (links in <> so no embeds unfold).
    static func discordText(_ outcome: Outcome) -> String {
        guard case .answer(let answer) = outcome else { return DiscordREST.escape(outcome.text) }
        var markup = DiscordREST.escape(answer.text)
        let shown = answer.sources.prefix(3)
        if !shown.isEmpty {
            markup += "\n\n**Sources**"
            for (index, source) in shown.enumerated() {
                markup += "\n\(index + 1). " + DiscordREST.escape(String((source.title ?? source.id).prefix(120)))
                if let url = source.url { markup += " <\(url)>" }
            }
        }
        return markup
    }
}
