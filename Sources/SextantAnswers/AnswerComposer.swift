import Foundation
import SextantClient
import SextantEmbedding
import SextantJSON
import SextantPayload
import SextantRemoteModels
import SextantRetrieval

/// One passage an answer draws on.
public struct AnswerSource: Sendable, Equatable, Codable {
    public var id: String
    public var title: String?
    public var url: String?
    public var text: String
    public var score: Double
}

/// What the bots and the web page's chat mode say back.
public struct ComposedAnswer: Sendable, Equatable {
    public enum Style: String, Sendable, Codable, CaseIterable { case extractive, llm }
    public var text: String
    public var sources: [AnswerSource]
    /// Which style produced `text` (an LLM answer that failed falls back to extractive).
    public var style: Style
    /// Why the LLM answer was not used, when it was asked for.
    public var fallbackReason: String?
}

/// One earlier turn of a conversation, for the LLM's context.
public struct ConversationTurn: Sendable, Equatable, Codable {
    public var role: String  // "user" or "assistant"
    public var text: String
    public init(role: String, text: String) {
        self.role = role
        self.text = text
    }
}

public enum AnswerError: Error, Sendable, CustomStringConvertible, Equatable {
    case collection(String)
    case embedder(String)
    public var description: String {
        switch self {
        case .collection(let message): return "collection: \(message)"
        case .embedder(let message): return "embedder: \(message)"
        }
    }
}

/// The language model behind `.llm` answers.
public enum AnswerModel: Sendable {
    case gemini(GeminiGenerator)
    /// An OpenAI-compatible `/v1/chat/completions` endpoint.
    case openAIChat(baseURL: String, apiKey: String?, model: String, client: RemoteJSONClient)

    /// `gemini:MODEL` (GEMINI_API_KEY) or `openai:MODEL` (OPENAI_API_KEY, OPENAI_BASE_URL).
    public static func make(_ spec: String, policy: RemoteCallPolicy, environment: [String: String] = ProcessInfo.processInfo.environment)
        throws -> AnswerModel
    {
        if spec.hasPrefix("gemini:") {
            return .gemini(GeminiGenerator(endpoint: try GeminiEndpoint(environment: environment), model: String(spec.dropFirst(7)),
                                           client: RemoteJSONClient(policy: policy)))
        }
        if spec.hasPrefix("openai:") {
            let base = environment["OPENAI_BASE_URL"] ?? "https://api.openai.com"
            return .openAIChat(baseURL: base.hasSuffix("/") ? String(base.dropLast()) : base, apiKey: environment["OPENAI_API_KEY"],
                               model: String(spec.dropFirst(7)), client: RemoteJSONClient(policy: policy))
        }
        throw RemoteModelError(.configuration, "answer model must be gemini:MODEL or openai:MODEL, got '\(spec)'")
    }
}

/// Retrieve, then answer: the top passages of a collection for a question
/// (embedded with the embedder that made the collection), then either an
/// extractive answer (the best passages, trimmed, with their sources) or an
/// LLM's answer grounded in them, with a time limit and the extractive answer
/// as the fallback. Shared by the bot gateway and the search API's chat mode.
public struct AnswerComposer: Sendable {
    public struct Settings: Sendable {
        /// Passages retrieved per question.
        public var passages = 4
        /// Characters kept of each passage in an extractive answer.
        public var passageCharacters = 600
        /// Passages shown in an extractive answer.
        public var shownPassages = 2
        /// Turns of earlier conversation given to the LLM.
        public var historyTurns = 6
        public var llmTimeoutMilliseconds: Int64 = 15_000
        /// Longest question read; the rest is cut.
        public static let maximumQuestionCharacters = 2_000
        public init() {}
    }

    let client: SextantClient
    let embedders: EmbedderRegistry
    let model: AnswerModel?
    public var settings: Settings

    public init(client: SextantClient, embedders: EmbedderRegistry, model: AnswerModel?, settings: Settings = Settings()) {
        self.client = client
        self.embedders = embedders
        self.model = model
        self.settings = settings
    }

    /// The passages for `question` in `collection`, best first.
    public func retrieve(_ question: String, collection: String) async throws -> [AnswerSource] {
        let handle: CollectionHandle
        do { handle = try await client.getCollection(name: collection) } catch let error as SextantError where error.code == .notFound {
            throw AnswerError.collection("'\(collection)' does not exist")
        }
        let embedder: any Embedder
        do { embedder = try EmbedderBinding.embedder(for: handle.info, in: embedders) } catch {
            throw AnswerError.embedder(error.message)
        }
        let text = String(question.prefix(Settings.maximumQuestionCharacters))
        guard let vector = try await embedder.embed([text]).first else { return [] }
        // Hybrid where the collection indexes its words: a question naming a
        // package, an error code or a reference finds it even when the
        // vectors rank it low. The passage score is then the fused one.
        let hybrid = handle.info.textIndex != nil
        let hits = hybrid
            ? try await handle.search(mode: .hybrid, vectors: [vector], texts: [text], k: settings.passages,
                                      include: [.documents, .metadatas, .distances])
            : try await handle.query(vectors: [vector], k: settings.passages, include: [.documents, .metadatas, .distances])
        return (hits.first ?? []).map { record in
            func string(_ key: String) -> String? {
                if case .string(let value)? = record.metadata?[key] { return value }
                return nil
            }
            let distance = Double(record.distance ?? 1)
            let score = record.score ?? (handle.info.metric == .l2 ? 1 / (1 + distance) : 1 - distance)
            return AnswerSource(id: record.id, title: string("title"), url: string("url"), text: record.document ?? "", score: score)
        }
    }

    public func answer(_ question: String, collection: String, style: ComposedAnswer.Style, systemPrompt: String? = nil,
                       history: [ConversationTurn] = []) async throws -> ComposedAnswer {
        // A short follow-up ("tell me more", "and on Windows?") means little alone:
        // retrieval reads it together with the previous question.
        var query = question
        if question.split(separator: " ").count <= 8, let previous = history.last(where: { $0.role == "user" }) {
            query = String(previous.text.prefix(1_000)) + "\n" + question
        }
        let sources = try await retrieve(query, collection: collection)
        let extractive = Self.extractive(sources, settings: settings)
        guard style == .llm else { return ComposedAnswer(text: extractive, sources: sources, style: .extractive) }
        guard let model else {
            return ComposedAnswer(text: extractive, sources: sources, style: .extractive, fallbackReason: "no answer model configured")
        }
        let prompt = Self.prompt(question, sources: sources, systemPrompt: systemPrompt, history: history.suffix(settings.historyTurns))
        let limit = settings.llmTimeoutMilliseconds
        do {
            let text = try await withThrowingTaskGroup(of: String?.self) { group in
                group.addTask { try await Self.generate(model, prompt: prompt, systemPrompt: systemPrompt) }
                group.addTask {
                    try await Task.sleep(nanoseconds: UInt64(limit) * 1_000_000)
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let text = first else {
                    throw RemoteModelError(.transport, "no answer within \(limit) ms")
                }
                return text
            }
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !trimmed.isEmpty else { throw RemoteModelError(.malformedReply, "empty answer") }
            return ComposedAnswer(text: trimmed, sources: sources, style: .llm)
        } catch {
            return ComposedAnswer(text: extractive, sources: sources, style: .extractive, fallbackReason: "\(error)")
        }
    }

    /// The best passages, trimmed at a sentence or word boundary, without the title line the scraper puts first.
    public static func extractive(_ sources: [AnswerSource], settings: Settings) -> String {
        guard !sources.isEmpty else { return "I found nothing about that in the knowledge base." }
        return sources.prefix(settings.shownPassages).map { source in
            trim(body(of: source), to: settings.passageCharacters)
        }.joined(separator: "\n\n")
    }

    /// A scraped chunk's document starts with its "title › heading" line; the
    /// answer shows the title separately, so the body is what follows.
    public static func body(of source: AnswerSource) -> String {
        let parts = source.text.split(separator: "\n", maxSplits: 1)
        if parts.count == 2, let title = source.title, parts[0].hasPrefix(title) {
            return parts[1].trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return source.text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    public static func trim(_ text: String, to limit: Int) -> String {
        let collapsed = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
        guard collapsed.count > limit else { return collapsed }
        let window = collapsed.prefix(limit)
        if let end = window.lastIndex(where: { $0 == "." || $0 == "!" || $0 == "?" }),
           window.distance(from: window.startIndex, to: end) > limit / 2 {
            return String(window[...end])
        }
        if let space = window.lastIndex(of: " ") { return String(window[..<space]) + "…" }
        return String(window) + "…"
    }

    static func prompt(_ question: String, sources: [AnswerSource], systemPrompt: String?, history: ArraySlice<ConversationTurn>) -> String {
        var text = "Answer the user's question using only the passages below. Cite passages as [1], [2]. "
            + "If the passages do not contain the answer, say so.\n\nPassages:\n"
        for (index, source) in sources.enumerated() {
            text += "[\(index + 1)] \(source.title ?? source.id)\n\(trim(body(of: source), to: 1_500))\n\n"
        }
        if !history.isEmpty {
            text += "Conversation so far:\n"
            for turn in history { text += "\(turn.role): \(String(turn.text.prefix(1_000)))\n" }
            text += "\n"
        }
        text += "Question: \(String(question.prefix(Settings.maximumQuestionCharacters)))"
        return text
    }

    static func generate(_ model: AnswerModel, prompt: String, systemPrompt: String?) async throws -> String {
        switch model {
        case .gemini(let generator):
            return try await generator.generate((systemPrompt.map { $0 + "\n\n" } ?? "") + prompt)
        case .openAIChat(let baseURL, let apiKey, let name, let client):
            var messages: [JSONValue] = []
            if let systemPrompt { messages.append(.object(["role": .string("system"), "content": .string(systemPrompt)])) }
            messages.append(.object(["role": .string("user"), "content": .string(prompt)]))
            let reply = try await client.post(baseURL + "/v1/chat/completions",
                                              headers: apiKey.map { [("Authorization", "Bearer " + $0)] } ?? [],
                                              body: .object(["model": .string(name), "messages": .array(messages)]))
            guard let text = reply["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue else {
                throw RemoteModelError(.malformedReply, "chat completion without choices[0].message.content")
            }
            return text
        }
    }
}
