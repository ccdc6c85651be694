import Hummingbird
import HTTPTypes
import Synchronization

/// Bounds the requests the API works on at once. Past the bound a request is
/// answered 429 at once, with `Retry-After`, instead of queuing: a burst then
/// costs its refusals, not unbounded memory and latency for everyone. Health,
/// readiness and metrics stay answerable so probes see the truth under load.
final class InFlightLimiter: Sendable {
    let maximum: Int
    private let current = Atomic<Int>(0)

    init(maximum: Int) {
        precondition(maximum > 0, "at least one request at a time")
        self.maximum = maximum
    }

    func enter() -> Bool {
        let now = current.add(1, ordering: .relaxed).newValue
        if now > maximum {
            current.subtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    func exit() {
        let now = current.subtract(1, ordering: .relaxed).newValue
        assert(now >= 0, "every exit matches an enter")
    }
}

struct InFlightLimitMiddleware: RouterMiddleware {
    typealias Context = APIContext
    let limiter: InFlightLimiter
    /// Seconds a refused client is told to wait.
    static let retryAfterSeconds = 1

    func handle(_ request: Request, context: APIContext, next: (Request, APIContext) async throws -> Response) async throws
        -> Response
    {
        let path = request.uri.path
        if path == "/healthz" || path == "/readyz" || path == "/metrics" { return try await next(request, context) }
        guard limiter.enter() else {
            var refusal = Reply.error(
                APIError(.tooManyRequests, "resource_exhausted",
                         "more than \(limiter.maximum) requests in progress; retry after \(Self.retryAfterSeconds) s"),
                chroma: path.hasPrefix("/api/"))
            refusal.headers[.retryAfter] = String(Self.retryAfterSeconds)
            return refusal
        }
        defer { limiter.exit() }
        return try await next(request, context)
    }
}
