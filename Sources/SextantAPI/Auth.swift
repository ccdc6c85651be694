import HTTPTypes
import Hummingbird
import SextantProtocol

/// Who may call what. With an API key configured, every write, admin and
/// feedback-export route needs `Authorization: Bearer KEY` (ChromaDB clients may
/// send `X-Chroma-Token: KEY` instead); search, the web page and feedback
/// submission stay open unless `protectSearch`. Health, readiness and metrics
/// are always open.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = APIContext
    let apiKey: String?
    static let chromaTokenField = HTTPField.Name("X-Chroma-Token")
    let protectSearch: Bool

    enum Access { case open, search, protected }

    static func access(_ method: HTTPRequest.Method, _ path: String) -> Access {
        if path == "/healthz" || path == "/readyz" || path == "/metrics" { return .open }
        if path.hasPrefix("/api/") {
            let tail = path.split(separator: "/").last.map(String.init) ?? ""
            switch method {
            case .get:
                if path.hasSuffix("/heartbeat") || path.hasSuffix("/version") || path.hasSuffix("/pre-flight-checks")
                    || path.hasSuffix("/auth/identity") || path.hasSuffix("/healthcheck") || path == "/api/v2"
                {
                    return .open
                }
                return .search
            case .post:
                if tail == "get" || tail == "query" { return .search }
                return .protected
            default:
                return .protected
            }
        }
        if path == "/v1/feedback" { return method == .get ? .protected : .search }
        // Bots are their owners' business: listing them and reading their conversations too.
        if path == "/v1/bots" || path.hasPrefix("/v1/bots/") { return .protected }
        if path.hasPrefix("/v1/") { return method == .get || path.hasSuffix("/search") || path.hasSuffix("/chat") ? .search : .protected }
        return .search  // the web page and its assets
    }

    func handle(_ request: Request, context: APIContext, next: (Request, APIContext) async throws -> Response) async throws
        -> Response
    {
        guard let apiKey else { return try await next(request, context) }
        let access = Self.access(request.method, request.uri.path)
        let needed = access == .protected || (access == .search && protectSearch)
        guard needed else { return try await next(request, context) }
        let bearer = request.headers[.authorization].flatMap { value -> String? in
            value.hasPrefix("Bearer ") ? String(value.dropFirst(7)) : nil
        }
        let chromaToken = Self.chromaTokenField.flatMap { request.headers[$0] }
        let presented = bearer ?? chromaToken ?? ""
        guard Tokens.equal(presented, apiKey) else {
            throw APIError(.unauthorized, "unauthenticated",
                           presented.isEmpty ? "this route needs an API key (Authorization: Bearer KEY)" : "wrong API key")
        }
        return try await next(request, context)
    }
}
