import ArgumentParser
import Foundation
import SextantChroma
import SextantClient
import SextantJSON
import SextantPayload

/// Options of every command that talks to an engine.
struct EngineOptions: ParsableArguments {
    @Option(help: "Engine address: host:port, tls://host:port, or unix:/path; then, comma-separated, any read replicas (reads go to them, writes to the first).") var engine = "127.0.0.1:7700"
    @Option(name: .customLong("token-file"), help: "File holding the engine's token.") var tokenFile: String?
    @Option(name: .customLong("engine-ca-file"),
            help: "CA certificate (PEM) that signed a tls:// engine's certificate; default $SEXTANT_ENGINE_CA_FILE, then the system's store.")
    var engineCAFile: String?

    func configuration() throws -> ClientConfiguration {
        var configuration = try ClientConfiguration(endpoints: engine, token: try Secrets.read(tokenFile))
        if let engineCAFile { configuration.caFile = engineCAFile }
        return configuration
    }

    func connect() async throws -> SextantClient {
        var configuration = try configuration()
        configuration.connections = 1
        return try await SextantClient.connect(configuration)
    }
}

func printJSON(_ value: JSONValue) { print(JSON.serialize(value)) }

func recordJSON(_ record: RecordResult) -> JSONValue {
    var object: [String: JSONValue] = ["id": .string(record.id)]
    if let document = record.document { object["document"] = .string(document) }
    if let metadata = record.metadata { object["metadata"] = ChromaGrammar.metadataJSON(metadata) }
    if let distance = record.distance { object["distance"] = .double(Double(distance)) }
    if let vector = record.vector { object["vector"] = .array(vector.map { .double(Double($0)) }) }
    return .object(object)
}

func parseFilters(_ whereText: String?, _ documentText: String?) throws -> (WhereFilter?, DocumentFilter?) {
    let filter = try whereText.map { try ChromaGrammar.where(try JSON.parse($0)) }
    let document = try documentText.map { try ChromaGrammar.whereDocument(try JSON.parse($0)) }
    return (filter, document)
}

struct CollectionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "collections", abstract: "List collections (JSON lines).")
    @OptionGroup var engine: EngineOptions
    @Flag(help: "Also each collection's indexing state (records not yet in the graph) and WAL position.") var stats = false

    func run() async throws {
        let client = try await engine.connect()
        defer { Task { await client.close() } }
        let statistics = stats ? Dictionary(try await client.stats().map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a }) : [:]
        for info in try await client.listCollections().collections {
            var object: [String: JSONValue] = [
                "id": .string(info.id), "name": .string(info.name), "dimension": .int(Int64(info.dimension)),
                "metric": .string(info.metric.rawValue), "count": .int(Int64(info.count)),
                "metadata": ChromaGrammar.metadataJSON(info.metadata),
            ]
            if let entry = statistics[info.id] {
                object["unindexed_records"] = .int(Int64(entry.unindexedRecords))
                object["indexed_records"] = .int(Int64(entry.indexedRecords))
                object["durable_lsn"] = .int(Int64(clamping: entry.durableLSN))
                if entry.isReplica {
                    object["applied_lsn"] = .int(Int64(clamping: entry.lastLSN))
                    object["replica_lag_seconds"] = entry.replicaLagMilliseconds.map { .double(Double($0) / 1_000) } ?? .null
                }
            }
            printJSON(.object(object))
        }
    }
}

struct CountCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "count", abstract: "Print the number of records in a collection.")
    @OptionGroup var engine: EngineOptions
    @Option var collection: String

    func run() async throws {
        let client = try await engine.connect()
        defer { Task { await client.close() } }
        print(try await client.getCollection(name: collection).count())
    }
}

struct GetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get", abstract: "Print records by id and/or filter (JSON lines).")
    @OptionGroup var engine: EngineOptions
    @Option var collection: String
    @Option(help: "Comma-separated ids.") var ids: String?
    @Option(name: .customLong("where"), help: "Metadata filter, ChromaDB JSON grammar.") var whereText: String?
    @Option(name: .customLong("where-document"), help: "Document filter, ChromaDB JSON grammar.") var documentText: String?
    @Option var limit = 10
    @Option var offset = 0
    @Flag(help: "Include vectors.") var vectors = false

    func run() async throws {
        let (filter, document) = try parseFilters(whereText, documentText)
        let client = try await engine.connect()
        defer { Task { await client.close() } }
        let handle = try await client.getCollection(name: collection)
        var include = Include.getDefault
        if vectors { include.insert(.vectors) }
        // Date literals read as the API reads them (the collection's `sextant:dates`).
        let records = try await handle.get(
            ids: ids.map { $0.split(separator: ",").map(String.init) }, where: filter?.readingDates(DateFields.formats(in: handle.info.metadata)),
            whereDocument: document, limit: limit,
            offset: offset, include: include)
        for record in records { printJSON(recordJSON(record)) }
    }
}

struct QueryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query", abstract: "Print the nearest records to a vector (JSON lines, nearest first).")
    @OptionGroup var engine: EngineOptions
    @Option var collection: String
    @Option(help: "The query vector as a JSON array of numbers.") var vector: String
    @Option var k = 10
    @Option(name: .customLong("where"), help: "Metadata filter, ChromaDB JSON grammar.") var whereText: String?
    @Option(name: .customLong("where-document"), help: "Document filter, ChromaDB JSON grammar.") var documentText: String?
    @Option var ef: Int?

    func run() async throws {
        guard let items = try JSON.parse(vector).arrayValue else { throw ValidationError("--vector must be a JSON array") }
        let values = items.compactMap { $0.doubleValue.map(Float.init) }
        guard values.count == items.count else { throw ValidationError("--vector must hold numbers only") }
        let (filter, document) = try parseFilters(whereText, documentText)
        let client = try await engine.connect()
        defer { Task { await client.close() } }
        let handle = try await client.getCollection(name: collection)
        let results = try await handle.query(vectors: [values], k: k, where: filter?.readingDates(DateFields.formats(in: handle.info.metadata)),
                                             whereDocument: document, ef: ef)
        for record in results.first ?? [] { printJSON(recordJSON(record)) }
    }
}
