import Foundation
import Hummingbird
import NIOCore
import SextantClient
import SextantChroma
import SextantJSON

/// Per-request context: a larger upload bound than Hummingbird's 2 MiB default,
/// because ChromaDB clients send batches of up to 5,461 embeddings as JSON.
public struct APIContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public init(source: ApplicationRequestContextSource) { coreContext = .init(source: source) }
    /// ChromaDB's own server accepts 40 MiB bodies.
    public var maxUploadSize: Int { APILimits.maximumBodyBytes }
}

/// Bounds the API enforces before anything reaches the engine.
public enum APILimits {
    public static let maximumBodyBytes = 40 << 20
    /// Requests worked on at once (`--max-in-flight`); past it, 429 with Retry-After.
    public static let defaultMaximumInFlight = 256
    public static let maximumQueryCharacters = 2_000
    public static let maximumK = 1_000
    public static let maximumCommentCharacters = 4_000
    public static let maximumUserCharacters = 200
    public static let maximumFeedbackExportRows = 100_000
    /// ChromaDB's single-node batch bound, announced in pre-flight checks.
    public static let chromaMaximumBatchSize = 5_461
}

/// A request that cannot be served: the status, a machine-readable code and a
/// message naming the problem. Rendered as native JSON or in ChromaDB's shape
/// depending on the route family.
public struct APIError: Error, Sendable {
    public let status: HTTPResponse.Status
    public let code: String
    public let message: String

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    public static func badRequest(_ message: String) -> APIError { APIError(.badRequest, "invalid_argument", message) }
    public static func notFound(_ message: String) -> APIError { APIError(.notFound, "not_found", message) }

    /// From an engine error: its status maps to the HTTP one.
    public init(_ error: SextantError) {
        switch error.code {
        case .invalidArgument, .outOfRange: self.init(.badRequest, "invalid_argument", error.message)
        case .notFound: self.init(.notFound, "not_found", error.message)
        case .alreadyExists: self.init(.conflict, "already_exists", error.message)
        case .resourceExhausted: self.init(.tooManyRequests, "resource_exhausted", error.message)
        case .failedPrecondition: self.init(.preconditionFailed, "failed_precondition", error.message)
        case .unauthenticated: self.init(.unauthorized, "unauthenticated", error.message)
        case .permissionDenied: self.init(.forbidden, "permission_denied", error.message)
        case .deadlineExceeded: self.init(.gatewayTimeout, "deadline_exceeded", error.message)
        case .unavailable: self.init(.serviceUnavailable, "engine_unavailable", error.message)
        default: self.init(.internalServerError, "internal", "engine error: \(error.message)")
        }
    }

    /// ChromaDB's error names (chromadb/errors.py maps them to exception types).
    var chromaName: String {
        switch status {
        case .badRequest: return "InvalidArgumentError"
        case .notFound: return "NotFoundError"
        case .conflict: return "UniqueConstraintError"
        case .unauthorized, .forbidden: return "AuthError"
        case .tooManyRequests: return "RateLimitError"
        case .internalServerError: return "InternalError"
        default: return "ChromaError"
        }
    }
}

enum Reply {
    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        let bytes = JSON.serializeBytes(value)
        var buffer = ByteBuffer()
        buffer.writeBytes(bytes)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: buffer))
    }

    static func text(_ text: String, contentType: String, status: HTTPResponse.Status = .ok) -> Response {
        var buffer = ByteBuffer()
        buffer.writeString(text)
        return Response(status: status, headers: [.contentType: contentType], body: .init(byteBuffer: buffer))
    }

    static func error(_ error: APIError, chroma: Bool) -> Response {
        if chroma {
            return json(.object(["error": .string(error.chromaName), "message": .string(error.message)]), status: error.status)
        }
        return json(.object(["error": .object(["code": .string(error.code), "message": .string(error.message)])]),
                    status: error.status)
    }
}

/// Reads a JSON body (bounded), or fails with a 400 naming the problem.
func readJSON(_ request: Request, _ context: APIContext) async throws -> JSONValue {
    let buffer: ByteBuffer
    do { buffer = try await request.body.collect(upTo: context.maxUploadSize) } catch {
        throw APIError(.contentTooLarge, "body_too_large", "request body exceeds \(context.maxUploadSize) bytes")
    }
    guard buffer.readableBytes > 0 else { throw APIError.badRequest("request body is empty; expected JSON") }
    do { return try JSON.parse(Array(buffer.readableBytesView)) } catch {
        throw APIError.badRequest("\(error)")
    }
}

extension JSONValue {
    /// A field that must be of a type, with an error naming it otherwise.
    func required<T>(_ key: String, _ extract: (JSONValue) -> T?, _ type: String) throws -> T {
        guard let value = self[key], !value.isNull else { throw APIError.badRequest("'\(key)' is required (\(type))") }
        guard let result = extract(value) else {
            throw APIError.badRequest("'\(key)' must be \(type), got \(value.typeName)")
        }
        return result
    }

    func optional<T>(_ key: String, _ extract: (JSONValue) -> T?, _ type: String) throws -> T? {
        guard let value = self[key], !value.isNull else { return nil }
        guard let result = extract(value) else {
            throw APIError.badRequest("'\(key)' must be \(type), got \(value.typeName)")
        }
        return result
    }
}

/// Reads `[[number]]` (or ChromaDB's base64 packed float32 strings).
func vectors(_ value: JSONValue, field: String) throws -> [[Float]?] {
    guard let items = value.arrayValue else { throw APIError.badRequest("'\(field)' must be a list of vectors") }
    return try items.enumerated().map { index, item -> [Float]? in
        switch item {
        case .null: return nil
        case .string(let base64):
            guard let data = Data(base64Encoded: base64), data.count % 4 == 0 else {
                throw APIError.badRequest("'\(field)[\(index)]' is not base64 of little-endian float32 values")
            }
            let vector = data.withUnsafeBytes { raw in
                (0..<(data.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
            }
            guard vector.allSatisfy(\.isFinite) else { throw APIError.badRequest("'\(field)[\(index)]' holds a non-finite value") }
            return vector
        case .array(let numbers):
            var vector: [Float] = []
            vector.reserveCapacity(numbers.count)
            for number in numbers {
                // Finite as a double but past float32's range would become infinity (or,
                // just past it, round down into it): the bound is float32's largest value exactly.
                guard let double = number.doubleValue, double.isFinite, abs(double) <= Double(Float.greatestFiniteMagnitude) else {
                    throw APIError.badRequest("'\(field)[\(index)]' must hold finite float32 numbers only (|x| ≤ 3.4e38)")
                }
                vector.append(Float(double))
            }
            return vector
        default:
            throw APIError.badRequest("'\(field)[\(index)]' must be a list of numbers")
        }
    }
}
