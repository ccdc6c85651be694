import Foundation
import Logging
import SextantClient
import SextantDatasets
import SextantEmbedding
import SextantPayload
import SextantRetrieval

/// Loads the demo collection on a first start: the sample of debian-minilm
/// records the repository ships (texts and metadata), embedded with the same
/// embedder that will embed the questions, so the web page answers at once.
public enum DemoLoader {
    public static let collectionName = "demo"

    /// Where the sample is looked for: the given path, ./tools/demo, or next to the executable.
    public static func locateSample(_ explicit: String?, executable: String) -> String? {
        let executableDirectory = (executable as NSString).deletingLastPathComponent
        let candidates = [explicit, "tools/demo/debian-sample.jsonl.gz",
                          executableDirectory + "/../../tools/demo/debian-sample.jsonl.gz",
                          executableDirectory + "/../share/sextant/demo/debian-sample.jsonl.gz"].compactMap { $0 }
        return candidates.first { FileManager.default.fileExists(atPath: $0) }
    }

    /// Creates and fills the demo collection unless the engine already holds any
    /// collection (a restart, or a restore from backup). Returns the records loaded.
    @discardableResult
    public static func loadIfEmpty(client: SextantClient, samplePath: String, embedder: any Embedder, logger: Logger) async throws -> Int {
        let existing = try await client.listCollections()
        guard existing.total == 0 else { return 0 }
        let descriptor = embedder.descriptor
        let collection = try await EmbedderBinding.open(
            client: client, name: collectionName, embedder: descriptor,
            metadata: ["description": .string("Debian package descriptions (a sample of the debian-minilm dataset)")])
        var reader = try GzipLineReader(path: samplePath)
        defer { reader.close() }
        var ids: [String] = []
        var texts: [String] = []
        var metadatas: [Metadata?] = []
        // The sample carries all-MiniLM-L6-v2 vectors (float16): used when that
        // is the embedder, so a first start does not spend a minute embedding.
        let usesShippedVectors = descriptor.identifier == "all-MiniLM-L6-v2@1"
        var shipped: [[Float]] = []
        var loaded = 0
        let start = Date()
        func flush() async throws {
            guard !ids.isEmpty else { return }
            let vectors = shipped.count == ids.count ? shipped : try await embedder.embed(texts)
            shipped.removeAll()
            try await collection.upsert(ids: ids, vectors: vectors, documents: texts, metadatas: metadatas)
            loaded += ids.count
            ids.removeAll()
            texts.removeAll()
            metadatas.removeAll()
        }
        while let line = reader.nextLine() {
            guard !line.isEmpty, let data = line.data(using: .utf8),
                let object = try JSONSerialization.jsonObject(with: data) as? [String: Any],
                let id = object["id"] as? String, let title = object["title"] as? String, let body = object["body"] as? String
            else { continue }
            var metadata: Metadata = ["title": .string(title)]
            for (key, value) in (object["metadata"] as? [String: Any]) ?? [:] {
                if let text = value as? String { metadata[key] = .string(text) }
                if let number = value as? Int { metadata[key] = .int(Int64(number)) }
            }
            if usesShippedVectors, let encoded = object["minilm_f16"] as? String, let bytes = Data(base64Encoded: encoded),
               bytes.count == descriptor.dimension * 2 {
                shipped.append(bytes.withUnsafeBytes { raw in
                    (0..<descriptor.dimension).map { Float(Float16(bitPattern: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)))) }
                })
            }
            ids.append(id)
            texts.append(title + ". " + body)
            metadatas.append(metadata)
            if ids.count == 256 { try await flush() }
        }
        try await flush()
        logger.notice("loaded the demo collection '\(collectionName)': \(loaded) records, vectors of \(descriptor.identifier) in \(String(format: "%.1f", Date().timeIntervalSince(start))) s")
        return loaded
    }
}
