import AsyncHTTPClient
import Foundation
import Histogram
import Logging
import SextantAnswers
import SextantClient
import SextantJSON
import SextantSupport
import Synchronization

public struct GatewayConfiguration: Sendable {
    public var telegramBaseURL = "https://api.telegram.org"
    /// Discord's REST base (the Gateway URL comes from GET /gateway/bot).
    public var discordAPIBaseURL = "https://discord.com/api/v10"
    /// Long-poll length of getUpdates; also how soon a stop or a data update is noticed by an idle bot.
    public var pollTimeoutSeconds: Int64 = 25
    /// How often collections' update events are checked.
    public var updateWatchMilliseconds = 2_000
    /// Backoff after a failure: doubles from the base up to the maximum.
    public var retryBaseMilliseconds = 1_000
    public var retryMaximumMilliseconds = 300_000
    /// Attempts at sending one reply (429s wait `retry_after`, errors back off).
    public var sendAttempts = 5

    /// A failed bot restarts after the base delay, doubling up to the maximum, forever.
    var restartBackoff: RetryPolicy {
        RetryPolicy(attempts: Int.max, initialDelayMilliseconds: Int64(retryBaseMilliseconds),
                    maximumDelayMilliseconds: Int64(max(retryBaseMilliseconds, retryMaximumMilliseconds)))
    }

    /// One reply: `sendAttempts` attempts, transport errors backing off from the base delay.
    var sendRetry: RetryPolicy {
        RetryPolicy(attempts: max(1, sendAttempts), initialDelayMilliseconds: Int64(retryBaseMilliseconds),
                    maximumDelayMilliseconds: Int64(max(retryBaseMilliseconds, retryMaximumMilliseconds)))
    }
    /// Connections to one platform host, for all bots together: each Telegram bot holds one for its long poll.
    public static let maximumConnectionsPerHost = 2_048

    public init() {}
}

/// Runs every enabled bot as a task of its own: one bot's failures (a rejected
/// token, a platform outage) back off and retry without touching the others.
/// Watches the update events of the bots' collections and restarts the bots of
/// a collection that changed, between messages, so none is dropped or answered twice.
public final class BotGateway: Sendable {
    let store: BotStore
    let composer: AnswerComposer
    let client: SextantClient
    let http: HTTPClient
    let configuration: GatewayConfiguration
    let logger: Logger

    struct Running {
        var task: Task<Void, Never>
        /// Bumped to ask the bot to restart between messages.
        var generation: Int
    }

    private let running = Mutex<[Int64: Running]>([:])
    private let latency = Mutex(Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three))

    public init(store: BotStore, composer: AnswerComposer, client: SextantClient, configuration: GatewayConfiguration, logger: Logger) {
        var httpConfiguration = HTTPClient.Configuration()
        httpConfiguration.timeout = .init(connect: .seconds(10), read: .seconds(configuration.pollTimeoutSeconds + 30))
        httpConfiguration.connectionPool = .init(idleTimeout: .seconds(60),
                                                 concurrentHTTP1ConnectionsPerHostSoftLimit: GatewayConfiguration.maximumConnectionsPerHost)
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfiguration)
        self.store = store
        self.composer = composer
        self.client = client
        self.configuration = configuration
        self.logger = logger
    }

    public func shutdown() async {
        stopAll()
        try? await http.shutdown()
    }

    // MARK: - Lifecycle

    /// Starts every enabled bot (at gateway start, also after a restore).
    public func startEnabled() throws {
        for bot in try store.list() where bot.enabled { try start(bot.id) }
    }

    public func start(_ id: Int64) throws {
        let bot = try store.bot(id)
        try running.withLock { running in
            guard running[id] == nil else { return }
            try store.setStatus(id, "starting")
            let task = Task { await self.supervise(bot) }
            running[id] = Running(task: task, generation: 0)
        }
        logger.notice("bot \(bot.name) (\(bot.platform.rawValue)) starting")
    }

    public func stop(_ id: Int64) throws {
        let task = running.withLock { running in running.removeValue(forKey: id)?.task }
        task?.cancel()
        try store.setStatus(id, "stopped")
    }

    public func stopAll() {
        let tasks = running.withLock { running in
            defer { running.removeAll() }
            return running.values.map(\.task)
        }
        for task in tasks { task.cancel() }
    }

    public var runningIDs: [Int64] { running.withLock { Array($0.keys) } }

    func generation(_ id: Int64) -> Int { running.withLock { $0[id]?.generation ?? -1 } }

    func requestRestart(collection: String, sequence: Int64) throws {
        let ids = Set(try store.list().filter { $0.collection == collection }.map(\.id))
        running.withLock { running in
            for id in ids where running[id] != nil { running[id]?.generation += 1 }
        }
    }

    /// Update-received → reply-sent latencies (microseconds): count, p50, p99, max.
    public func latencySummary() -> (count: Int, p50Milliseconds: Double, p99Milliseconds: Double, maxMilliseconds: Double) {
        latency.withLock { histogram in
            (Int(histogram.totalCount), Double(histogram.valueAtPercentile(50)) / 1_000, Double(histogram.valueAtPercentile(99)) / 1_000,
             Double(histogram.max) / 1_000)
        }
    }

    public func resetLatency() { latency.withLock { $0.reset() } }

    func recordLatency(since received: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - received
        let micros = UInt64(max(0, elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000))
        latency.withLock { _ = $0.record(micros) }
    }

    /// Polls the update events of the running bots' collections; a new event
    /// restarts those bots between messages so they pick the fresh data up.
    public func watchUpdates() async {
        var seen: [String: Int64] = [:]
        while !Task.isCancelled {
            if let bots = try? store.list().filter({ runningIDs.contains($0.id) }) {
                for collection in Set(bots.map(\.collection)) {
                    // A collection that never had an event is at sequence 0.
                    let lookup: UpdateEvent?
                    do { lookup = try await client.lastUpdate(collection: collection) } catch { continue }
                    let sequence = lookup?.sequence ?? 0
                    if let previous = seen[collection], sequence > previous, let event = lookup {
                        logger.notice("collection \(collection) updated (\(event.source) run \(event.runID), sequence \(sequence)); restarting its bots")
                        try? requestRestart(collection: collection, sequence: sequence)
                    }
                    seen[collection] = sequence
                }
            }
            try? await Task.sleep(nanoseconds: UInt64(configuration.updateWatchMilliseconds) * 1_000_000)
        }
    }

    /// Runs a bot until stopped: restarts on request, backs off on failure.
    func supervise(_ initial: BotRecord) async {
        var failures = 0
        while !Task.isCancelled {
            let generation = self.generation(initial.id)
            do {
                let bot = try store.bot(initial.id)
                if let event = try? await client.lastUpdate(collection: bot.collection) { try store.setDataSequence(bot.id, event.sequence) }
                switch bot.platform {
                case .telegram: try await runTelegram(bot, generation: generation)
                case .discord: try await runDiscord(bot, generation: generation)
                }
                failures = 0
                logger.info("bot \(bot.name) restarting to pick up fresh data")
            } catch is CancellationError {
                return
            } catch {
                guard !Task.isCancelled else { return }
                failures += 1
                let reason = "\(error)"
                try? store.setStatus(initial.id, "failed", error: reason)
                let delay = configuration.restartBackoff.delayMilliseconds(afterFailures: failures)
                logger.warning("bot \(initial.name) failed: \(reason); retrying in \(delay) ms")
                try? await Task.sleep(nanoseconds: UInt64(delay) * 1_000_000)
            }
        }
    }

    // MARK: - Telegram

    func runTelegram(_ bot: BotRecord, generation: Int) async throws {
        let api = TelegramAPI(baseURL: configuration.telegramBaseURL, token: try store.token(bot.id), http: http)
        let me = try await api.call("getMe", [:], timeoutSeconds: 30)
        let username = me["username"]?.stringValue ?? bot.name
        try store.setStatus(bot.id, "running")
        logger.notice("bot \(bot.name) running as @\(username)")
        var offset = try store.telegramOffset(bot.id)
        while !Task.isCancelled && self.generation(bot.id) == generation {
            let result: JSONValue
            do {
                result = try await api.call("getUpdates", [
                    "offset": .int(offset), "timeout": .int(configuration.pollTimeoutSeconds),
                    "allowed_updates": .array([.string("message")]),
                ], timeoutSeconds: configuration.pollTimeoutSeconds + 30)
            } catch TelegramError.rateLimited(let seconds) {
                try await Task.sleep(nanoseconds: UInt64(seconds) * 1_000_000_000)
                continue
            }
            let received = ContinuousClock.now
            let updates = (result.arrayValue ?? []).sorted { ($0["update_id"]?.intValue ?? 0) < ($1["update_id"]?.intValue ?? 0) }
            for update in updates {
                guard let updateID = update["update_id"]?.intValue, updateID >= offset else { continue }
                if let message = update["message"], let text = message["text"]?.stringValue,
                   let chat = message["chat"]?["id"]?.intValue {
                    let answer = try await reply(bot, username: username, text: text, chat: chat,
                                                 messageID: message["message_id"]?.intValue, api: api)
                    try store.recordExchange(bot: bot.id, chat: String(chat), question: text, answer: answer.text,
                                             sources: answer.sources, cursor: .telegram(updateID + 1))
                    recordLatency(since: received)
                } else {
                    try store.skipTelegramUpdate(bot: bot.id, nextOffset: updateID + 1)
                }
                offset = updateID + 1
            }
        }
    }

    struct Reply {
        var text: String
        var sources: [String]
    }

    /// Composes and sends the answer to one message.
    func reply(_ bot: BotRecord, username: String, text: String, chat: Int64, messageID: Int64?, api: TelegramAPI) async throws -> Reply {
        let command = text.split(separator: " ").first.map { String($0.split(separator: "@").first ?? "") } ?? ""
        let outcome = try await compose(bot, question: command == "/start" || command == "/help" ? "" : text, chat: String(chat))
        let blocks: [MarkdownV2.Block]
        switch outcome {
        case .help(let help): blocks = [MarkdownV2.bold("Hello!"), MarkdownV2.plain(help)]
        case .answer(let answer): blocks = Self.format(answer)
        case .unavailable(let reason): blocks = [MarkdownV2.plain(reason)]
        }
        for message in MarkdownV2.messages(blocks) {
            try await send(api, chat: chat, markup: message, replyTo: messageID)
        }
        return Reply(text: outcome.text, sources: outcome.sourceIDs)
    }

    /// What a bot says to a message, before any platform's formatting.
    enum Outcome: Sendable {
        case help(String)
        case answer(ComposedAnswer)
        case unavailable(String)

        /// The reply as plain text, for the conversation store.
        var text: String {
            switch self {
            case .help(let text), .unavailable(let text): return text
            case .answer(let answer): return answer.text
            }
        }

        var sourceIDs: [String] {
            if case .answer(let answer) = self { return answer.sources.map { $0.url ?? $0.id } }
            return []
        }
    }

    /// The one answer path of every platform: an empty question gets the help
    /// text; otherwise the composer answers with this chat's history.
    /// An engine that cannot be reached throws: the message stays unanswered and
    /// is retried after the bot's backoff, instead of getting an apology.
    func compose(_ bot: BotRecord, question: String, chat: String) async throws -> Outcome {
        guard !question.isEmpty else {
            return .help("Ask me a question and I answer from the \(bot.collection) knowledge base, with the sources I used.")
        }
        let history = (try? store.history(bot: bot.id, chat: chat)) ?? []
        do {
            return .answer(try await composer.answer(question, collection: bot.collection, style: bot.answerStyle,
                                                     systemPrompt: bot.systemPrompt.isEmpty ? nil : bot.systemPrompt, history: history))
        } catch let error as AnswerError {
            return .unavailable("I cannot answer right now: \(error)")
        }
    }

    static func format(_ answer: ComposedAnswer) -> [MarkdownV2.Block] {
        var blocks = answer.text.components(separatedBy: "\n\n").filter { !$0.isEmpty }.map(MarkdownV2.plain)
        let shown = answer.sources.prefix(3)
        if !shown.isEmpty {
            var lines = [MarkdownV2.bold("Sources")]
            for (index, source) in shown.enumerated() {
                let label = "\(index + 1). " + String((source.title ?? source.id).prefix(120))
                lines.append(source.url.map { MarkdownV2.link(label, $0) } ?? MarkdownV2.plain(label))
            }
            blocks.append(MarkdownV2.Block(markup: lines.map(\.markup).joined(separator: "\n"),
                                           visible: lines.map(\.visible).reduce(0, +) + lines.count - 1))
        }
        return blocks
    }

    /// sendMessage with Telegram's 429 `retry_after` honoured and transport errors
    /// retried; a message Telegram cannot parse is sent again as plain text.
    func send(_ api: TelegramAPI, chat: Int64, markup: String, replyTo: Int64?) async throws {
        var parameters: [String: JSONValue] = ["chat_id": .int(chat), "text": .string(markup), "parse_mode": .string("MarkdownV2")]
        if let replyTo { parameters["reply_parameters"] = .object(["message_id": .int(replyTo), "allow_sending_without_reply": .bool(true)]) }
        do { try await sendAttempts(api, &parameters, markup: markup) } catch is ResendAsPlainText {
            throw TelegramError.badRequest("the reply did not parse, and no attempt was left to send it as plain text")
        }
    }

    private func sendAttempts(_ api: TelegramAPI, _ parameters: inout [String: JSONValue], markup: String) async throws {
        try await configuration.sendRetry.run({ _ in
            do {
                _ = try await api.call("sendMessage", parameters, timeoutSeconds: 30)
            } catch TelegramError.badRequest(let message) where message.contains("parse") && parameters["parse_mode"] != nil {
                logger.warning("Telegram could not parse a reply (\(message)); sending it as plain text")
                parameters["parse_mode"] = nil
                parameters["text"] = .string(MarkdownV2.unescape(markup))
                throw ResendAsPlainText()
            }
        }, classify: { [logger] error in
            switch error {
            case is ResendAsPlainText: return .retryAfter(milliseconds: 0)
            case TelegramError.rateLimited(let seconds): return .retryAfter(milliseconds: Int64(max(1, seconds)) * 1_000)
            case TelegramError.transport(let message):
                logger.warning("sendMessage failed (\(message)); retrying")
                return .retry
            default: return .fail
            }
        })
    }

    /// The reply did not parse as MarkdownV2: send it again as plain text, at once.
    private struct ResendAsPlainText: Error {}

}
