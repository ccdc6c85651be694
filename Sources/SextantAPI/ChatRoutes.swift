import Foundation
import Hummingbird
import SextantAnswers
import SextantClient
import SextantJSON

/// `POST /v1/collections/{name}/chat`: the web page's chat mode, answered by
/// the same composer as the bots. The API stays stateless: the browser keeps
/// its conversation (per session) and sends the recent turns with each message.
struct ChatRoutes {
    let composer: AnswerComposer

    /// Turns of history a request may carry, and characters per turn.
    static let maximumHistoryTurns = 12
    static let maximumTurnCharacters = 4_000

    func register(on router: Router<APIContext>) {
        router.post("/v1/collections/:name/chat") { request, context in
            let name = try context.parameters.require("name")
            return try await chat(name, try await readJSON(request, context))
        }
    }

    func chat(_ name: String, _ body: JSONValue) async throws -> Response {
        let start = ContinuousClock.now
        guard body.objectValue != nil else { throw APIError.badRequest("body must be a JSON object") }
        guard let message = body["message"]?.stringValue?.trimmingCharacters(in: .whitespacesAndNewlines), !message.isEmpty else {
            throw APIError.badRequest("'message' must be a non-empty string")
        }
        guard message.count <= APILimits.maximumQueryCharacters else {
            throw APIError.badRequest("'message' must be at most \(APILimits.maximumQueryCharacters) characters")
        }
        var style = ComposedAnswer.Style.extractive
        if let value = body["style"] {
            guard let text = value.stringValue, let parsed = ComposedAnswer.Style(rawValue: text) else {
                throw APIError.badRequest("'style' must be \"extractive\" or \"llm\"")
            }
            style = parsed
        }
        var history: [ConversationTurn] = []
        if let value = body["history"] {
            guard let turns = value.arrayValue, turns.count <= Self.maximumHistoryTurns else {
                throw APIError.badRequest("'history' must be an array of at most \(Self.maximumHistoryTurns) turns")
            }
            for (index, turn) in turns.enumerated() {
                guard let role = turn["role"]?.stringValue, role == "user" || role == "assistant",
                      let text = turn["text"]?.stringValue, text.count <= Self.maximumTurnCharacters
                else {
                    throw APIError.badRequest("history[\(index)] must be {\"role\": \"user\"|\"assistant\", \"text\": ≤ \(Self.maximumTurnCharacters) characters}")
                }
                history.append(ConversationTurn(role: role, text: text))
            }
        }
        let answer: ComposedAnswer
        do {
            answer = try await composer.answer(message, collection: name, style: style, history: history)
        } catch let error as AnswerError {
            switch error {
            case .collection: throw APIError.notFound("collection '\(name)' does not exist")
            case .embedder(let message): throw APIError(.unprocessableContent, "embedder_unavailable", message)
            }
        }
        let elapsed = ContinuousClock.now - start
        return Reply.json(.object([
            "collection": .string(name), "answer": .string(answer.text), "style": .string(answer.style.rawValue),
            "fallback_reason": answer.fallbackReason.map(JSONValue.string) ?? .null,
            "sources": .array(answer.sources.map { source in
                .object([
                    "id": .string(source.id), "title": source.title.map(JSONValue.string) ?? .null,
                    "url": source.url.map(JSONValue.string) ?? .null, "score": .double(source.score),
                ])
            }),
            "took_ms": .double(Double(elapsed.components.seconds) * 1_000 + Double(elapsed.components.attoseconds) * 1e-15),
        ]))
    }
}
