import Foundation
import SextantChroma
import SextantClient
import SextantEmbedding
import SextantJSON
import SextantMiniLM
import SextantPayload

/// Brings every collection of a Chroma source into the engine: ids, vectors,
/// documents, metadata and the collection's own metadata and settings.
///
/// Idempotent and resumable: records are upserted by id, and the target
/// collection carries a marker (`sextant:chroma_import`) naming the source
/// collection, the source's version and how far the import got. A re-run
/// resumes where an interrupted one stopped, skips a collection whose import
/// finished against the same source version, and imports again one whose
/// source changed since.
public struct ChromaImporter: Sendable {
    public struct Options: Sendable {
        /// Records per upsert (the engine's batch bound is 16,384).
        public var batchSize = 1_000
        /// Give imported collections the engine's BM25 full-text index.
        public var textIndex = true
        /// Import from the start even where a finished or partial import is recorded.
        public var restart = false
        /// Only these collections (by name); all when empty.
        public var only: Set<String> = []
        /// How often progress is written into the target's marker, so a resumed
        /// import repeats at most this much (upserts make the repeat harmless).
        public var progressIntervalSeconds = 2.0
        public init() {}
    }

    public struct Outcome: Sendable, Equatable {
        public enum State: Sendable, Equatable {
            case imported
            case upToDate
            case refused(String)
        }
        public var name: String
        public var state: State
        public var records: Int
        /// Records the source could not give whole, with why.
        public var skipped: [String]
        public var arraysAsText: Int
        public var seconds: Double
        /// The embedder recorded for the collection's text queries, if any.
        public var embedder: String?
        public var resumedFrom: Int
    }

    /// The marker kept in the target collection's metadata.
    public static let markerKey = "sextant:chroma_import"

    let client: SextantClient
    let source: any ChromaSource
    let options: Options
    let log: @Sendable (String) -> Void

    public init(client: SextantClient, source: any ChromaSource, options: Options = Options(), log: @escaping @Sendable (String) -> Void) {
        precondition((1...16_384).contains(options.batchSize), "batch size within the engine's bound")
        self.client = client
        self.source = source
        self.options = options
        self.log = log
    }

    struct Marker: Equatable {
        var source: String
        var version: String
        var position: Int
        var done: Bool

        var json: MetadataValue {
            .string(JSON.serialize(.object([
                "source": .string(source), "version": .string(version), "position": .int(Int64(position)), "done": .bool(done),
            ])))
        }

        init(source: String, version: String, position: Int, done: Bool) {
            self.source = source
            self.version = version
            self.position = position
            self.done = done
        }

        init?(_ value: MetadataValue?) {
            guard case .string(let text) = value, let json = try? JSON.parse(text), let source = json["source"]?.stringValue,
                  let version = json["version"]?.stringValue, let position = json["position"]?.intValue, let done = json["done"]?.boolValue
            else { return nil }
            self.init(source: source, version: version, position: Int(position), done: done)
        }
    }

    public func run() async throws -> [Outcome] {
        var outcomes: [Outcome] = []
        for collection in try await source.collections() where options.only.isEmpty || options.only.contains(collection.name) {
            do {
                outcomes.append(try await importCollection(collection))
            } catch let error as ChromaImportError {
                if case .target(let message) = error {
                    log("\(collection.name): refused: \(message)")
                    outcomes.append(Outcome(name: collection.name, state: .refused(message), records: 0, skipped: [], arraysAsText: 0,
                                            seconds: 0, embedder: nil, resumedFrom: 0))
                    continue
                }
                throw error
            }
        }
        return outcomes
    }

    /// The collection's settings in the engine, from Chroma's.
    func createTarget(_ collection: ChromaCollection, marker: Marker) async throws -> (CollectionHandle, String?) {
        var metadata = collection.metadata
        if let configuration = collection.configuration { metadata[ChromaCollectionSettings.configurationKey] = .string(JSON.serialize(configuration)) }
        var sparse: [SparseIndexOptions] = []
        var fullText = options.textIndex
        if let schema = collection.schema {
            metadata[ChromaCollectionSettings.schemaKey] = .string(JSON.serialize(schema))
            let indexes: (sparse: [ChromaCollectionSettings.SparseDeclaration], fullText: Bool)
            do { indexes = try ChromaCollectionSettings.schemaIndexes(schema) } catch { throw ChromaImportError.format("schema: \(error)") }
            sparse = indexes.sparse.map { SparseIndexOptions(key: $0.key, bm25: $0.bm25, sourceKey: $0.sourceKey, embeddingFunction: $0.embeddingFunction) }
            fullText = fullText || indexes.fullText
        }
        var embedder: String? = nil
        let descriptor = MiniLMEmbedder.descriptor
        if ChromaCollectionSettings.namesMiniLM(collection.configuration), collection.dimension.map({ $0 == descriptor.dimension }) ?? true {
            metadata[EmbedderDescriptor.metadataKey] = .string(descriptor.identifier)
            metadata[EmbedderDescriptor.dimensionMetadataKey] = .int(Int64(descriptor.dimension))
            embedder = descriptor.identifier
        }
        metadata[Self.markerKey] = marker.json
        let metric: DistanceMetric
        switch ChromaCollectionSettings.space(collection.metadata, collection.configuration) {
        case "cosine": metric = .cosine
        case "ip": metric = .innerProduct
        case "l2": metric = .l2
        case let other: throw ChromaImportError.target("distance space '\(other)' is not one of l2, cosine, ip")
        }
        let handle = try await client.createCollection(
            name: collection.name, dimension: collection.dimension ?? 0, metric: metric,
            m: ChromaCollectionSettings.hnswSetting(collection.metadata, "hnsw:M"),
            efConstruction: ChromaCollectionSettings.hnswSetting(collection.metadata, "hnsw:construction_ef"),
            ef: ChromaCollectionSettings.hnswSetting(collection.metadata, "hnsw:search_ef"), metadata: metadata,
            textIndex: fullText ? TextIndexOptions() : nil, sparseIndexes: sparse)
        return (handle, embedder)
    }

    func importCollection(_ collection: ChromaCollection) async throws -> Outcome {
        let started = Date()
        let version = try await source.version(collection)
        var marker = Marker(source: collection.id, version: version, position: 0, done: false)
        var handle: CollectionHandle
        var embedder: String?
        do {
            handle = try await client.getCollection(name: collection.name)
            embedder = handle.info.metadata[EmbedderDescriptor.metadataKey].flatMap { if case .string(let s) = $0 { return s } else { return nil } }
            if let existing = Marker(handle.info.metadata[Self.markerKey]) {
                guard existing.source == collection.id else {
                    throw ChromaImportError.target(
                        "a collection named '\(collection.name)' was imported from another Chroma collection (\(existing.source)); delete or rename it first")
                }
                if existing.done && existing.version == version && !options.restart {
                    log("\(collection.name): up to date (imported earlier from the same source version)")
                    return Outcome(name: collection.name, state: .upToDate, records: 0, skipped: [], arraysAsText: 0,
                                   seconds: Date().timeIntervalSince(started), embedder: embedder, resumedFrom: 0)
                }
                if !existing.done && existing.version == version && !options.restart { marker.position = existing.position }
            } else if try await handle.count() > 0 {
                throw ChromaImportError.target(
                    "a collection named '\(collection.name)' already holds records that no import made; delete or rename it first")
            }
        } catch let error as SextantError where error.code == .notFound {
            (handle, embedder) = try await createTarget(collection, marker: marker)
        }
        let resumedFrom = marker.position
        if resumedFrom > 0 { log("\(collection.name): resuming at position \(resumedFrom)") }
        var baseMetadata = handle.info.metadata
        var imported = 0
        var skipped: [String] = []
        var arrays = 0
        var lastMarker = Date()
        var position: Int? = marker.position
        var next: Task<ChromaPage, any Error>? = nil
        let source = self.source
        let batchSize = options.batchSize
        func fetch(_ from: Int) -> Task<ChromaPage, any Error> {
            Task { try await source.page(collection, from: from, limit: batchSize) }
        }
        if let start = position { next = fetch(start) }
        while let pending = next, let current = position {
            let page = try await pending.value
            // Read the next page while this one is written.
            next = page.next.map(fetch)
            if !page.records.isEmpty {
                _ = try await handle.upsert(ids: page.records.map(\.id), vectors: page.records.map(\.vector),
                                            documents: page.records.map(\.document), metadatas: page.records.map(\.metadata))
            }
            imported += page.records.count
            skipped += page.skipped
            arrays += page.arraysAsText
            for reason in page.skipped.prefix(3) { log("\(collection.name): skipped \(reason)") }
            position = page.next
            assert(position.map { $0 > current } ?? true, "pages advance")
            if let position, Date().timeIntervalSince(lastMarker) >= options.progressIntervalSeconds {
                marker.position = position
                baseMetadata[Self.markerKey] = marker.json
                handle = try await handle.modify(metadata: baseMetadata)
                lastMarker = Date()
                let total = collection.count.map { " of \($0)" } ?? ""
                log("\(collection.name): \(resumedFrom == 0 ? imported : imported + resumedFrom)\(total) records")
            }
        }
        marker.done = true
        marker.position = 0
        baseMetadata[Self.markerKey] = marker.json
        _ = try await handle.modify(metadata: baseMetadata)
        let seconds = Date().timeIntervalSince(started)
        log("\(collection.name): imported \(imported) records in \(String(format: "%.1f", seconds)) s"
            + (skipped.isEmpty ? "" : ", skipped \(skipped.count)") + (arrays == 0 ? "" : ", \(arrays) array values kept as JSON text")
            + (embedder.map { ", text queries embedded with \($0)" } ?? ""))
        return Outcome(name: collection.name, state: .imported, records: imported, skipped: skipped, arraysAsText: arrays, seconds: seconds,
                       embedder: embedder, resumedFrom: resumedFrom)
    }
}

/// Opens SOURCE: an http(s):// Chroma server, a persist directory, or a
/// .tar.gz of one (unpacked into `scratch`, a folder the caller removes).
public func openChromaSource(_ text: String, scratch: String, token: String? = nil, tenant: String = "default_tenant",
                             database: String = "default_database") throws -> any ChromaSource {
    if text.hasPrefix("http://") || text.hasPrefix("https://") {
        return ChromaServer(url: text, tenant: tenant, database: database, token: token)
    }
    var directory = text
    if text.hasSuffix(".tar.gz") || text.hasSuffix(".tgz") || text.hasSuffix(".tar") {
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        let tar = Process()
        tar.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        tar.arguments = ["tar", text.hasSuffix(".tar") ? "-xf" : "-xzf", text, "-C", scratch, "--no-same-owner"]
        try tar.run()
        // Polled, not waitUntilExit(): that spins a run loop and on Linux can miss an exit.
        let deadline = Date().addingTimeInterval(3_600)
        while tar.isRunning && Date() < deadline { usleep(10_000) }
        if tar.isRunning {
            tar.terminate()
            throw ChromaImportError.source("tar did not finish unpacking \(text) within an hour")
        }
        guard tar.terminationStatus == 0 else { throw ChromaImportError.source("tar could not unpack \(text) (status \(tar.terminationStatus))") }
        guard let found = try findPersistDirectory(scratch) else { throw ChromaImportError.format("\(text) holds no chroma.sqlite3") }
        directory = found
    }
    return try ChromaPersistDirectory(path: directory, tenant: tenant, database: database)
}

/// The folder holding chroma.sqlite3 at or below `root` (an archive often wraps it in one folder).
func findPersistDirectory(_ root: String) throws -> String? {
    if FileManager.default.fileExists(atPath: root + "/chroma.sqlite3") { return root }
    guard let walker = FileManager.default.enumerator(atPath: root) else { return nil }
    while let entry = walker.nextObject() as? String {
        if entry.hasSuffix("/chroma.sqlite3") || entry == "chroma.sqlite3" {
            return root + "/" + String(entry.dropLast("/chroma.sqlite3".count))
        }
    }
    return nil
}
