import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SextantChroma
import SextantJSON
import SextantPayload

/// A running Chroma server, read through the REST API as chromadb-client reads
/// it: collections listed, records paged with `/get` by offset (Chroma's
/// stable internal order), embeddings included.
public struct ChromaServer: ChromaSource {
    public let baseURL: String
    let tenant: String
    let database: String
    let token: String?
    /// Bound on one response body: a page of 1,000 records of 4,096 floats as JSON, with room.
    public static let maximumResponseBytes = 256 << 20
    public var description: String { "Chroma server \(baseURL)" }

    public init(url: String, tenant: String = "default_tenant", database: String = "default_database", token: String? = nil) {
        baseURL = url.hasSuffix("/") ? String(url.dropLast()) : url
        self.tenant = tenant
        self.database = database
        self.token = token
    }

    /// Refused connections fail in seconds: the shared client keeps retrying a
    /// connection for 90 s, which made a wrong URL look like a hang.
    static let http = HTTPClient(
        eventLoopGroupProvider: .singleton,
        configuration: HTTPClient.Configuration(timeout: .init(connect: .seconds(5), read: .seconds(300))))

    var collectionsPath: String { "\(baseURL)/api/v2/tenants/\(tenant)/databases/\(database)/collections" }

    func call(_ method: HTTPMethod, _ url: String, body: JSONValue? = nil) async throws -> JSONValue {
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "User-Agent", value: "sextant-import")
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: JSON.serializeBytes(body)))
        }
        let response: HTTPClientResponse
        do {
            response = try await Self.http.execute(request, timeout: .seconds(300))
        } catch {
            throw ChromaImportError.source("\(url): \(error)")
        }
        let bytes = try await response.body.collect(upTo: Self.maximumResponseBytes)
        let text = String(buffer: bytes)
        guard response.status.code == 200 else {
            throw ChromaImportError.source("\(method) \(url): HTTP \(response.status.code) \(text.prefix(300))")
        }
        do { return try JSON.parse(text) } catch { throw ChromaImportError.source("\(url): the answer is not JSON (\(error))") }
    }

    public func collections() async throws -> [ChromaCollection] {
        var result: [ChromaCollection] = []
        let pageSize = 100
        while true {
            let page = try await call(.GET, "\(collectionsPath)?limit=\(pageSize)&offset=\(result.count)")
            guard let items = page.arrayValue else { throw ChromaImportError.source("the collection list is not a list") }
            for item in items {
                guard let id = item["id"]?.stringValue, let name = item["name"]?.stringValue else {
                    throw ChromaImportError.source("a collection without an id or a name")
                }
                let metadata = try item["metadata"].flatMap { $0.isNull ? nil : try chromaMetadata($0).metadata } ?? [:]
                let count = try await call(.GET, "\(collectionsPath)/\(id)/count").intValue
                result.append(ChromaCollection(
                    id: id, name: name, dimension: item["dimension"]?.intValue.map { Int($0) }, metadata: metadata,
                    configuration: item["configuration_json"].flatMap { $0.isNull ? nil : $0 },
                    schema: item["schema"].flatMap { $0.isNull ? nil : $0 }, count: count.map { Int($0) }))
            }
            if items.count < pageSize { return result }
        }
    }

    public func version(_ collection: ChromaCollection) async throws -> String {
        // The server exposes no log position; the count and the collection's
        // reported version change with every add or delete (an update in place
        // may go unnoticed: re-run with --restart after one).
        // GET on a collection takes its name; count and get take its id.
        let name = collection.name.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? collection.name
        let info = try await call(.GET, "\(collectionsPath)/\(name)")
        let count = try await call(.GET, "\(collectionsPath)/\(collection.id)/count").intValue ?? -1
        return "\(collection.id):\(count):\(info["version"]?.intValue ?? 0):\(info["log_position"]?.intValue ?? 0)"
    }

    public func page(_ collection: ChromaCollection, from position: Int, limit: Int) async throws -> ChromaPage {
        let reply = try await call(.POST, "\(collectionsPath)/\(collection.id)/get", body: .object([
            "limit": .int(Int64(limit)), "offset": .int(Int64(position)),
            "include": .array([.string("embeddings"), .string("documents"), .string("metadatas")]),
        ]))
        guard let ids = reply["ids"]?.arrayValue else { throw ChromaImportError.source("a /get answer without ids") }
        let embeddings = reply["embeddings"]?.arrayValue ?? []
        let documents = reply["documents"]?.arrayValue ?? []
        let metadatas = reply["metadatas"]?.arrayValue ?? []
        var records: [ChromaRecord] = []
        var skipped: [String] = []
        var arrays = 0
        for (index, idValue) in ids.enumerated() {
            guard let id = idValue.stringValue else { throw ChromaImportError.source("a non-string id") }
            guard index < embeddings.count, let numbers = embeddings[index].arrayValue else {
                skipped.append("\(id): the server returned no embedding")
                continue
            }
            let vector = try numbers.map { number -> Float in
                guard let value = number.doubleValue else { throw ChromaImportError.source("\(id): an embedding holds a non-number") }
                return Float(value)
            }
            let document = index < documents.count ? documents[index].stringValue : nil
            var metadata: Metadata? = nil
            if index < metadatas.count, !metadatas[index].isNull {
                let converted = try chromaMetadata(metadatas[index])
                metadata = converted.metadata
                arrays += converted.arrayKeys.count
            }
            records.append(ChromaRecord(id: id, vector: vector, document: document, metadata: metadata))
        }
        return ChromaPage(records: records, next: ids.count < limit ? nil : position + ids.count, skipped: skipped, arraysAsText: arrays)
    }
}
