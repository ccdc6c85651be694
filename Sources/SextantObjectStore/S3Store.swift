import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SextantSupport

/// Where and how to reach an S3-compatible service. Flags win over the
/// standard AWS environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
/// AWS_SESSION_TOKEN, AWS_REGION / AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_S3 /
/// AWS_ENDPOINT_URL). Secrets are never logged: `description` leaves them out.
public struct S3Settings: Sendable, CustomStringConvertible {
    /// e.g. http://127.0.0.1:9000 (MinIO, moto), https://storage.googleapis.com
    /// (GCS with HMAC keys), https://ACCOUNT.r2.cloudflarestorage.com. Nil: AWS.
    public var endpoint: String?
    public var region: String
    public var accessKeyID: String?
    public var secretAccessKey: String?
    public var sessionToken: String?
    /// bucket in the path (MinIO, moto, GCS, R2) rather than in the host name.
    public var pathStyle: Bool
    public var timeoutSeconds: Int64 = 300
    /// Transport errors, 5xx and 429 are retried: 4 attempts, 200 ms doubling to 5 s.
    public var retry = RetryPolicy(attempts: 4, initialDelayMilliseconds: 200, maximumDelayMilliseconds: 5_000)

    public init(endpoint: String? = nil, region: String? = nil, accessKeyID: String? = nil, secretAccessKey: String? = nil,
                sessionToken: String? = nil, pathStyle: Bool? = nil,
                environment: [String: String] = ProcessInfo.processInfo.environment) {
        let endpoint = endpoint ?? environment["AWS_ENDPOINT_URL_S3"] ?? environment["AWS_ENDPOINT_URL"]
        self.endpoint = endpoint.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        self.region = region ?? environment["AWS_REGION"] ?? environment["AWS_DEFAULT_REGION"]
            ?? ((endpoint ?? "").contains("storage.googleapis.com") ? "auto" : "us-east-1")
        self.accessKeyID = accessKeyID ?? environment["AWS_ACCESS_KEY_ID"]
        self.secretAccessKey = secretAccessKey ?? environment["AWS_SECRET_ACCESS_KEY"]
        self.sessionToken = sessionToken ?? environment["AWS_SESSION_TOKEN"]
        self.pathStyle = pathStyle ?? (endpoint != nil)
    }

    public var description: String {
        "S3(endpoint: \(endpoint ?? "aws"), region: \(region), path-style: \(pathStyle), key: \(accessKeyID == nil ? "none" : "set"))"
    }
}

/// An S3 bucket and prefix over plain HTTP(S): ListObjectsV2, HEAD, GET
/// (streamed to a file), PUT (streamed from a file), DELETE, signed with
/// Signature V4. Transport errors and 5xx / 429 are retried with backoff.
public struct S3Store: ObjectStore {
    public let bucket: String
    public let prefix: String
    public let settings: S3Settings
    private let signer: SigV4Signer?
    private let scheme: String
    private let host: String
    private let basePath: String

    public var displayName: String { "s3://\(bucket)/\(prefix)" }

    public init(bucket: String, prefix: String, settings: S3Settings) throws {
        self.bucket = bucket
        self.prefix = prefix
        self.settings = settings
        if let key = settings.accessKeyID, let secret = settings.secretAccessKey {
            signer = SigV4Signer(accessKeyID: key, secretAccessKey: secret, sessionToken: settings.sessionToken, region: settings.region)
        } else {
            signer = nil  // anonymous: public buckets
        }
        let endpoint = settings.endpoint ?? "https://s3.\(settings.region).amazonaws.com"
        guard let url = URL(string: endpoint), let scheme = url.scheme, let endpointHost = url.host else {
            throw ObjectStoreError(.invalidLocation, "invalid S3 endpoint '\(endpoint)'")
        }
        self.scheme = scheme
        let port = url.port.map { ":\($0)" } ?? ""
        if settings.pathStyle {
            host = endpointHost + port
            basePath = "/" + bucket
        } else {
            host = bucket + "." + endpointHost + port
            basePath = ""
        }
    }

    private func objectPath(_ key: String) -> String { basePath + "/" + prefix + key }

    private struct Reply {
        var status: UInt
        var headers: HTTPHeaders
        var body: [UInt8]
    }

    /// One signed request with retries; the body is produced per attempt.
    private func send(_ method: HTTPMethod, path: String, query: [(String, String)] = [], payloadSHA256: String,
                      contentLength: Int? = nil, body: (@Sendable () throws -> HTTPClientRequest.Body)? = nil,
                      collectUpTo maximumBytes: Int = 16 << 20,
                      streamInto file: String? = nil, extraHeaders: [(String, String)] = []) async throws -> Reply {
        do {
            return try await settings.retry.run({ _ in
                let reply = try await sendOnce(method, path: path, query: query, payloadSHA256: payloadSHA256,
                                               contentLength: contentLength, body: try body?(), maximumBytes: maximumBytes,
                                               streamInto: file, extraHeaders: extraHeaders)
                if reply.status >= 500 || reply.status == 429 { throw BusyReply(reply: reply) }
                return reply
            }, classify: { error in error is ObjectStoreError ? .fail : .retry })
        } catch let busy as BusyReply {
            return busy.reply  // still busy after every attempt: the caller reports its status
        } catch let error as ObjectStoreError {
            throw error
        } catch {
            throw ObjectStoreError(.transport, "\(method) \(displayName): \(error)")
        }
    }

    /// A 5xx or 429 reply, worth another attempt.
    private struct BusyReply: Error { let reply: Reply }

    private func sendOnce(_ method: HTTPMethod, path: String, query: [(String, String)], payloadSHA256: String,
                          contentLength: Int?, body: HTTPClientRequest.Body?, maximumBytes: Int,
                          streamInto file: String?, extraHeaders: [(String, String)]) async throws -> Reply {
        var headers: [(String, String)] = [("host", host)]
        if let contentLength { headers.append(("content-length", "\(contentLength)")) }
        headers += extraHeaders
        if let signer {
            headers = signer.sign(method: method.rawValue, path: path, query: query, headers: headers,
                                  payloadSHA256Hex: payloadSHA256, date: Date())
        }
        let queryText = query.map { SigV4Signer.encode($0.0, slash: true) + "=" + SigV4Signer.encode($0.1, slash: true) }
            .joined(separator: "&")
        var request = HTTPClientRequest(url: scheme + "://" + host + SigV4Signer.encode(path, slash: false)
                                        + (queryText.isEmpty ? "" : "?" + queryText))
        request.method = method
        for (name, value) in headers where name != "host" && name != "content-length" { request.headers.add(name: name, value: value) }
        if let body { request.body = body }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(settings.timeoutSeconds))
        let status = response.status.code
        if let file, status == 200 {
            try await Self.stream(response.body, into: file)
            return Reply(status: status, headers: response.headers, body: [])
        }
        let collected = try await response.body.collect(upTo: maximumBytes)
        return Reply(status: status, headers: response.headers, body: Array(collected.readableBytesView))
    }

    private static func stream(_ body: HTTPClientResponse.Body, into path: String) async throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let temporary = path + ".partial-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ObjectStoreError(.io, "cannot create \(temporary): \(String(cString: strerror(errno)))") }
        var closed = false
        defer { if !closed { close(fd); unlink(temporary) } }
        for try await buffer in body {
            try buffer.withUnsafeReadableBytes { raw in
                guard let base = raw.baseAddress else { return }
                var offset = 0
                while offset < raw.count {
                    let written = Foundation.write(fd, base + offset, raw.count - offset)
                    if written < 0 {
                        if errno == EINTR { continue }
                        throw ObjectStoreError(.io, "cannot write \(temporary): \(String(cString: strerror(errno)))")
                    }
                    offset += written
                }
            }
        }
        guard fsync(fd) == 0 else { throw ObjectStoreError(.io, "cannot fsync \(temporary)") }
        close(fd)
        closed = true
        try LocalFiles.finish(temporary, path)
    }

    private func failure(_ reply: Reply, _ what: String) -> ObjectStoreError {
        let text = String(decoding: reply.body.prefix(2_048), as: UTF8.self)
        let code = XMLScan.first("Code", in: text) ?? "HTTP \(reply.status)"
        let message = XMLScan.first("Message", in: text) ?? ""
        let kind: ObjectStoreError.Kind = switch reply.status {
        case 404: .notFound
        case 401, 403: .accessDenied
        default: .remote
        }
        return ObjectStoreError(kind, "\(what) \(displayName): \(code) \(message)".trimmingCharacters(in: .whitespaces))
    }

    public func list(prefix subprefix: String) async throws -> [ObjectInfo] {
        var found: [ObjectInfo] = []
        var token: String? = nil
        repeat {
            var query = [("list-type", "2"), ("prefix", prefix + subprefix)]
            if let token { query.append(("continuation-token", token)) }
            let reply = try await send(.GET, path: basePath.isEmpty ? "/" : basePath, query: query,
                                       payloadSHA256: SigV4Signer.emptyPayloadSHA256)
            guard reply.status == 200 else { throw failure(reply, "list") }
            let text = String(decoding: reply.body, as: UTF8.self)
            for entry in XMLScan.all("Contents", in: text) {
                guard let key = XMLScan.first("Key", in: entry), key.hasPrefix(prefix), !key.hasSuffix("/") else { continue }
                let size = Int(XMLScan.first("Size", in: entry) ?? "") ?? 0
                let etag = (XMLScan.first("ETag", in: entry) ?? "").replacingOccurrences(of: "\"", with: "")
                let modified = XMLScan.first("LastModified", in: entry).flatMap(Self.parseISO8601) ?? 0
                found.append(ObjectInfo(key: String(key.dropFirst(prefix.count)), sizeBytes: size, etag: etag,
                                        lastModifiedSeconds: modified))
            }
            token = XMLScan.first("IsTruncated", in: text) == "true" ? XMLScan.first("NextContinuationToken", in: text) : nil
        } while token != nil
        return found.sorted { $0.key < $1.key }
    }

    public func head(_ key: String) async throws -> ObjectInfo? {
        let reply = try await send(.HEAD, path: objectPath(key), payloadSHA256: SigV4Signer.emptyPayloadSHA256)
        if reply.status == 404 { return nil }
        guard reply.status == 200 else { throw failure(reply, "head \(key) in") }
        let size = Int(reply.headers.first(name: "content-length") ?? "") ?? 0
        let etag = (reply.headers.first(name: "etag") ?? "").replacingOccurrences(of: "\"", with: "")
        return ObjectInfo(key: key, sizeBytes: size, etag: etag, lastModifiedSeconds: 0)
    }

    public func download(_ key: String, to path: String) async throws {
        let reply = try await send(.GET, path: objectPath(key), payloadSHA256: SigV4Signer.emptyPayloadSHA256, streamInto: path)
        guard reply.status == 200 else { throw failure(reply, "get \(key) from") }
    }

    public func read(_ key: String, maximumBytes: Int) async throws -> [UInt8] {
        let reply = try await send(.GET, path: objectPath(key), payloadSHA256: SigV4Signer.emptyPayloadSHA256,
                                   collectUpTo: maximumBytes)
        guard reply.status == 200 else { throw failure(reply, "get \(key) from") }
        return reply.body
    }

    public func readVersioned(_ key: String, maximumBytes: Int) async throws -> (bytes: [UInt8], etag: String) {
        let reply = try await send(.GET, path: objectPath(key), payloadSHA256: SigV4Signer.emptyPayloadSHA256,
                                   collectUpTo: maximumBytes)
        guard reply.status == 200 else { throw failure(reply, "get \(key) from") }
        return (reply.body, (reply.headers.first(name: "etag") ?? "").replacingOccurrences(of: "\"", with: ""))
    }

    public func upload(file path: String, to key: String, sha256Hex checksum: String?) async throws {
        let digest = try checksum ?? sha256Hex(ofFile: path)
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
              let size = (attributes[.size] as? NSNumber)?.intValue else {
            throw ObjectStoreError(.io, "cannot stat \(path)")
        }
        let reply = try await send(.PUT, path: objectPath(key), payloadSHA256: digest, contentLength: size, body: {
            .stream(FileChunks(path: path), length: .known(Int64(size)))
        })
        guard reply.status == 200 else { throw failure(reply, "put \(key) to") }
    }

    public func write(_ bytes: [UInt8], to key: String) async throws {
        let reply = try await send(.PUT, path: objectPath(key), payloadSHA256: sha256Hex(bytes), contentLength: bytes.count,
                                   body: { .bytes(bytes) })
        guard reply.status == 200 else { throw failure(reply, "put \(key) to") }
    }

    public func write(_ bytes: [UInt8], to key: String, if condition: WriteCondition) async throws -> String {
        let header: (String, String)
        switch condition {
        case .absent: header = ("if-none-match", "*")
        case .matches(let etag): header = ("if-match", "\"\(etag)\"")
        }
        let reply = try await send(.PUT, path: objectPath(key), payloadSHA256: sha256Hex(bytes), contentLength: bytes.count,
                                   body: { .bytes(bytes) }, extraHeaders: [header])
        if reply.status == 412 || reply.status == 409 {
            throw ObjectStoreError(.preconditionFailed, "put \(key) to \(displayName): the condition \(condition) does not hold")
        }
        guard reply.status == 200 else { throw failure(reply, "put \(key) to") }
        return (reply.headers.first(name: "etag") ?? "").replacingOccurrences(of: "\"", with: "")
    }

    /// Creates the bucket if it does not exist (for tests and first-time backup set-up).
    public func createBucket() async throws {
        let reply = try await send(.PUT, path: basePath.isEmpty ? "/" : basePath, payloadSHA256: SigV4Signer.emptyPayloadSHA256,
                                   contentLength: 0, body: { .bytes([]) })
        guard reply.status == 200 || reply.status == 409 else { throw failure(reply, "create bucket") }
    }

    public func delete(_ key: String) async throws {
        let reply = try await send(.DELETE, path: objectPath(key), payloadSHA256: SigV4Signer.emptyPayloadSHA256)
        guard reply.status == 204 || reply.status == 200 || reply.status == 404 else { throw failure(reply, "delete \(key) in") }
    }

    static func parseISO8601(_ text: String) -> Double? {
        // 2026-11-28T21:40:00.000Z
        let digits = text.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        guard digits.count >= 6 else { return nil }
        var parts = tm()
        parts.tm_year = Int32(digits[0] - 1900)
        parts.tm_mon = Int32(digits[1] - 1)
        parts.tm_mday = Int32(digits[2])
        parts.tm_hour = Int32(digits[3])
        parts.tm_min = Int32(digits[4])
        parts.tm_sec = Int32(digits[5])
        return Double(timegm(&parts))
    }
}

/// A file as an async sequence of 1 MiB buffers, for streamed uploads.
struct FileChunks: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let path: String

    struct AsyncIterator: AsyncIteratorProtocol {
        let handle: FileHandle?
        mutating func next() async throws -> ByteBuffer? {
            guard let handle else { throw ObjectStoreError(.io, "cannot open the file to upload") }
            guard let data = try handle.read(upToCount: 1 << 20), !data.isEmpty else {
                try? handle.close()
                return nil
            }
            return ByteBuffer(bytes: data)
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(handle: FileHandle(forReadingAtPath: path)) }
}

/// Just enough XML for S3's list and error replies: the text of named
/// elements, with the five predefined entities decoded.
enum XMLScan {
    static func all(_ tag: String, in text: String) -> [String] {
        var results: [String] = []
        var rest = text[...]
        while let open = rest.range(of: "<\(tag)>") {
            guard let close = rest.range(of: "</\(tag)>", range: open.upperBound..<rest.endIndex) else { break }
            results.append(String(rest[open.upperBound..<close.lowerBound]))
            rest = rest[close.upperBound...]
        }
        return results
    }

    static func first(_ tag: String, in text: String) -> String? { all(tag, in: text).first.map(decode) }

    static func decode(_ text: String) -> String {
        guard text.contains("&") else { return text }
        return text.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&apos;", with: "'")
            .replacingOccurrences(of: "&#34;", with: "\"").replacingOccurrences(of: "&amp;", with: "&")
    }
}
