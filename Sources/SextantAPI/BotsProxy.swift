import AsyncHTTPClient
import Foundation
import Hummingbird
import HTTPTypes
import NIOCore
import NIOHTTP1
import SextantJSON

/// The page's bots view goes through the search API to the bot gateway's admin
/// routes, so one origin, one key and one page serve both. The API key guards
/// every bots route, reads included (AuthMiddleware); the gateway gets the
/// same key. Bodies are small (a bot's settings) and answers are passed on as
/// the gateway wrote them: tokens go in, never out.
struct BotsProxy {
    /// The gateway's admin address, e.g. http://127.0.0.1:8090; nil: no gateway runs.
    let gatewayURL: String?
    let apiKey: String?
    static let maximumBodyBytes = 64 * 1_024
    /// A gateway that is down answers 502 in seconds, not after the shared
    /// client's 90 s of connection retries.
    static let http = HTTPClient(
        eventLoopGroupProvider: .singleton,
        configuration: HTTPClient.Configuration(timeout: .init(connect: .seconds(2), read: .seconds(30))))
    static let maximumAnswerBytes = 4 << 20

    func register(on router: Router<APIContext>) {
        let forward: @Sendable (Request, APIContext) async throws -> Response = { request, context in
            try await self.forward(request, context)
        }
        router.get("/v1/bots", use: forward)
        router.post("/v1/bots", use: forward)
        router.get("/v1/bots/:id", use: forward)
        router.patch("/v1/bots/:id", use: forward)
        router.delete("/v1/bots/:id", use: forward)
        router.post("/v1/bots/:id/start", use: forward)
        router.post("/v1/bots/:id/stop", use: forward)
        router.get("/v1/bots/:id/conversations", use: forward)
    }

    func forward(_ request: Request, _ context: APIContext) async throws -> Response {
        let path = request.uri.path
        guard path.hasPrefix("/v1/bots") else { throw APIError.notFound("no such route") }
        if let id = context.parameters.get("id"), Int64(id) == nil {
            throw APIError.badRequest("a bot id is an integer, not '\(id.prefix(40))'")
        }
        // Not a server fault: this deployment has no bots to manage.
        guard let gatewayURL else {
            throw APIError(.notFound, "bots_off",
                           "no bot gateway runs beside this API (sextant up starts one when SEXTANT_BOTS_KEY is set)")
        }
        var outgoing = HTTPClientRequest(url: gatewayURL + path + (request.uri.query.map { "?" + $0 } ?? ""))
        outgoing.method = HTTPMethod(rawValue: request.method.rawValue)
        if let apiKey { outgoing.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        if request.method == .post || request.method == .patch {
            let body: ByteBuffer
            do { body = try await request.body.collect(upTo: Self.maximumBodyBytes) } catch {
                throw APIError(.contentTooLarge, "body_too_large", "a bot's settings exceed \(Self.maximumBodyBytes) bytes")
            }
            outgoing.headers.add(name: "Content-Type", value: "application/json")
            outgoing.body = .bytes(body)
        }
        let answer: HTTPClientResponse
        do {
            answer = try await Self.http.execute(outgoing, timeout: .seconds(30))
        } catch {
            throw APIError(.badGateway, "bots_unreachable", "the bot gateway at \(gatewayURL) did not answer: \(error)")
        }
        let body = try await answer.body.collect(upTo: Self.maximumAnswerBytes)
        var headers = HTTPFields()
        if let type = answer.headers.first(name: "content-type"), let name = HTTPField.Name("Content-Type") { headers[name] = type }
        return Response(status: HTTPResponse.Status(code: Int(answer.status.code)), headers: headers, body: .init(byteBuffer: body))
    }
}
