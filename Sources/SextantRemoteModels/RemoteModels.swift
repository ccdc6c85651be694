import Foundation
import SextantEmbedding
import SextantJSON

/// Google's Gemini API (generativelanguage.googleapis.com, or a compatible
/// server at GEMINI_BASE_URL): `generateContent` for text and
/// `batchEmbedContents` for embeddings. The key comes from GEMINI_API_KEY
/// (or GOOGLE_API_KEY) and travels in the x-goog-api-key header.
public struct GeminiEndpoint: Sendable {
    public var baseURL: String
    public var apiKey: String

    public init(baseURL: String? = nil, apiKey: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        let base = baseURL ?? environment["GEMINI_BASE_URL"] ?? "https://generativelanguage.googleapis.com"
        self.baseURL = base.hasSuffix("/") ? String(base.dropLast()) : base
        guard let key = apiKey ?? environment["GEMINI_API_KEY"] ?? environment["GOOGLE_API_KEY"], !key.isEmpty else {
            throw RemoteModelError(.configuration, "set GEMINI_API_KEY to use Gemini")
        }
        self.apiKey = key
    }

    func url(_ model: String, _ method: String) -> String { "\(baseURL)/v1beta/models/\(model):\(method)" }
    var headers: [(String, String)] { [("x-goog-api-key", apiKey)] }
}

/// Text generation through Gemini's generateContent.
public struct GeminiGenerator: Sendable {
    public let endpoint: GeminiEndpoint
    public let model: String
    public let client: RemoteJSONClient

    public init(endpoint: GeminiEndpoint, model: String, client: RemoteJSONClient) {
        self.endpoint = endpoint
        self.model = model
        self.client = client
    }

    /// The text of the first candidate. `json` asks for a JSON reply.
    public func generate(_ prompt: String, json: Bool = false) async throws -> String {
        var body: [String: JSONValue] = [
            "contents": .array([.object(["role": .string("user"), "parts": .array([.object(["text": .string(prompt)])])])]),
        ]
        if json { body["generationConfig"] = .object(["responseMimeType": .string("application/json")]) }
        let reply = try await client.post(endpoint.url(model, "generateContent"), headers: endpoint.headers, body: .object(body))
        guard let parts = reply["candidates"]?.arrayValue?.first?["content"]?["parts"]?.arrayValue else {
            throw RemoteModelError(.malformedReply, "generateContent: no candidates in the reply")
        }
        return parts.compactMap { $0["text"]?.stringValue }.joined()
    }
}

/// Embeddings through Gemini's batchEmbedContents (at most 100 texts a request).
public struct GeminiEmbedder: Embedder {
    public let descriptor: EmbedderDescriptor
    let endpoint: GeminiEndpoint
    let model: String
    let client: RemoteJSONClient
    public static let maximumTextsPerRequest = 100

    public init(endpoint: GeminiEndpoint, model: String, dimension: Int, client: RemoteJSONClient) {
        self.endpoint = endpoint
        self.model = model
        self.client = client
        descriptor = EmbedderDescriptor(name: "gemini/" + model, version: "api", dimension: dimension)
    }

    public func embed(_ texts: [String]) async throws -> [[Float]] {
        try await inChunks(texts, of: Self.maximumTextsPerRequest) { chunk in
            let requests = chunk.map { text -> JSONValue in
                .object(["model": .string("models/" + model), "content": .object(["parts": .array([.object(["text": .string(text)])])])])
            }
            let reply = try await client.post(endpoint.url(model, "batchEmbedContents"), headers: endpoint.headers,
                                              body: .object(["requests": .array(requests)]))
            guard let embeddings = reply["embeddings"]?.arrayValue, embeddings.count == chunk.count else {
                throw RemoteModelError(.malformedReply, "batchEmbedContents: expected \(chunk.count) embeddings")
            }
            return try embeddings.map { try vector($0["values"], descriptor.dimension) }
        }
    }
}

/// Embeddings from any OpenAI-compatible `/v1/embeddings` endpoint (OpenAI,
/// Azure-style proxies, vLLM, Ollama, LM Studio). OPENAI_BASE_URL includes
/// the /v1; the key is OPENAI_API_KEY (optional for local servers).
public struct OpenAIEmbedder: Embedder {
    public let descriptor: EmbedderDescriptor
    let baseURL: String
    let apiKey: String?
    let model: String
    let client: RemoteJSONClient
    public static let maximumTextsPerRequest = 256

    public init(model: String, dimension: Int, client: RemoteJSONClient, baseURL: String? = nil, apiKey: String? = nil,
                environment: [String: String] = ProcessInfo.processInfo.environment) {
        let base = baseURL ?? environment["OPENAI_BASE_URL"] ?? "https://api.openai.com/v1"
        self.baseURL = base.hasSuffix("/") ? String(base.dropLast()) : base
        self.apiKey = apiKey ?? environment["OPENAI_API_KEY"]
        self.model = model
        self.client = client
        descriptor = EmbedderDescriptor(name: "openai/" + model, version: "api", dimension: dimension)
    }

    public func embed(_ texts: [String]) async throws -> [[Float]] {
        try await inChunks(texts, of: Self.maximumTextsPerRequest) { chunk in
            let headers = apiKey.map { [("Authorization", "Bearer " + $0)] } ?? []
            let reply = try await client.post(baseURL + "/embeddings", headers: headers, body: .object([
                "model": .string(model), "input": .array(chunk.map { .string($0) }),
            ]))
            guard let data = reply["data"]?.arrayValue, data.count == chunk.count else {
                throw RemoteModelError(.malformedReply, "/embeddings: expected \(chunk.count) embeddings")
            }
            // The API may return them in any order; `index` says where each goes.
            var vectors = [[Float]](repeating: [], count: chunk.count)
            for (position, item) in data.enumerated() {
                let index = item["index"]?.intValue.map(Int.init) ?? position
                guard vectors.indices.contains(index) else { throw RemoteModelError(.malformedReply, "/embeddings: bad index \(index)") }
                vectors[index] = try vector(item["embedding"], descriptor.dimension)
            }
            return vectors
        }
    }
}

/// Splits `texts` into request-sized chunks sent concurrently (the client's
/// limiter bounds how many are in flight); results keep the input order.
func inChunks(_ texts: [String], of size: Int, _ body: @escaping @Sendable ([String]) async throws -> [[Float]]) async throws -> [[Float]] {
    let chunks = stride(from: 0, to: texts.count, by: size).map { Array(texts[$0..<min($0 + size, texts.count)]) }
    return try await withThrowingTaskGroup(of: (Int, [[Float]]).self) { group in
        for (index, chunk) in chunks.enumerated() { group.addTask { (index, try await body(chunk)) } }
        var results = [[[Float]]](repeating: [], count: chunks.count)
        for try await (index, vectors) in group { results[index] = vectors }
        return results.flatMap { $0 }
    }
}

/// A reply's number array as an L2-normalised vector of the expected dimension.
func vector(_ value: JSONValue?, _ dimension: Int) throws -> [Float] {
    guard let values = value?.arrayValue else { throw RemoteModelError(.malformedReply, "embedding is not an array") }
    var vector = [Float]()
    vector.reserveCapacity(values.count)
    for item in values {
        guard let number = item.doubleValue, number.isFinite else { throw RemoteModelError(.malformedReply, "embedding holds a non-number") }
        vector.append(Float(number))
    }
    guard dimension == 0 || vector.count == dimension else {
        throw RemoteModelError(.malformedReply, "embedding has \(vector.count) values, expected \(dimension)")
    }
    let norm = vector.reduce(0) { $0 + $1 * $1 }.squareRoot()
    guard norm > 0 else { throw RemoteModelError(.malformedReply, "embedding is all zeros") }
    return vector.map { $0 / norm }
}

/// Builds an embedder from a flag: `builtin` (the process's default: all-MiniLM-L6-v2
/// where its weights are installed, else `sextant-hash`), `minilm`, `sextant-hash`, `openai:MODEL`,
/// `gemini:MODEL`. Remote ones learn their dimension from one probe call.
public enum EmbedderFactory {
    public static func make(_ spec: String, registry: EmbedderRegistry, policy: RemoteCallPolicy) async throws -> any Embedder {
        if spec == "builtin" || spec == "default" { return registry.default }
        if spec == "minilm", let miniLM = registry.embedder("all-MiniLM-L6-v2@1") { return miniLM }
        if let embedder = registry.embedder(spec) { return embedder }
        if spec == "sextant-hash" { return HashingEmbedder() }
        let client = RemoteJSONClient(policy: policy)
        let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[1].isEmpty else {
            throw RemoteModelError(.configuration, "unknown embedder '\(spec)': use builtin, openai:MODEL or gemini:MODEL")
        }
        switch parts[0] {
        case "openai":
            let probe = OpenAIEmbedder(model: parts[1], dimension: 0, client: client)
            let dimension = try await probe.embed(["dimension probe"]).first?.count ?? 0
            return OpenAIEmbedder(model: parts[1], dimension: dimension, client: client)
        case "gemini":
            let endpoint = try GeminiEndpoint()
            let probe = GeminiEmbedder(endpoint: endpoint, model: parts[1], dimension: 0, client: client)
            let dimension = try await probe.embed(["dimension probe"]).first?.count ?? 0
            return GeminiEmbedder(endpoint: endpoint, model: parts[1], dimension: dimension, client: client)
        default:
            throw RemoteModelError(.configuration, "unknown embedder '\(spec)': use builtin, openai:MODEL or gemini:MODEL")
        }
    }
}
