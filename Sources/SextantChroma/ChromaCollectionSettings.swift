import SextantJSON
import SextantPayload

/// How a Chroma collection's settings sit in Sextant's collection metadata and
/// how Chroma's own settings read, shared by the Chroma-compatible API and the
/// importer from Chroma.
public enum ChromaCollectionSettings {
    /// Keys Sextant keeps in a collection's metadata for itself; never shown as the user's.
    public static let privatePrefix = "sextant:"
    /// Chroma's `configuration_json`, as the client sent it or the source stored it.
    public static let configurationKey = "sextant:chroma_configuration"
    /// Chroma's `schema`, kept as sent: the client reads its sparse functions back from it.
    public static let schemaKey = "sextant:chroma_schema"

    /// The distance space: `metadata["hnsw:space"]`, or `configuration.hnsw.space`
    /// (or `.spann.space`); ChromaDB's default is l2.
    public static func space(_ metadata: Metadata?, _ configuration: JSONValue?) -> String {
        if case .string(let value) = metadata?["hnsw:space"] { return value }
        return configuration?["hnsw"]?["space"]?.stringValue ?? configuration?["spann"]?["space"]?.stringValue ?? "l2"
    }

    /// An integer HNSW setting from Chroma's legacy metadata keys (`hnsw:M`, `hnsw:construction_ef`, `hnsw:search_ef`).
    public static func hnswSetting(_ metadata: Metadata, _ key: String) -> Int? {
        if case .int(let value) = metadata[key] { return Int(value) }
        return nil
    }

    public struct SparseDeclaration: Sendable, Equatable {
        public var key: String
        public var bm25: Bool
        public var sourceKey: String?
        /// The client's function configuration, serialized, kept and echoed.
        public var embeddingFunction: String?
    }

    /// The indexes a Chroma `schema` declares: sparse vector indexes on metadata
    /// keys, and full text on `#document`.
    public static func schemaIndexes(_ schema: JSONValue) throws(GrammarError) -> (sparse: [SparseDeclaration], fullText: Bool) {
        guard case .object = schema else { throw GrammarError("'schema' must be an object") }
        var sparse: [SparseDeclaration] = []
        var fullText = false
        for (key, entry) in schema["keys"]?.objectValue ?? [:] {
            if key == "#document", entry["string"]?["fts_index"]?["enabled"]?.boolValue == true { fullText = true }
            guard let index = entry["sparse_vector"]?["sparse_vector_index"], index["enabled"]?.boolValue == true else { continue }
            guard !key.hasPrefix("#") else { throw GrammarError("schema: a sparse vector index needs a metadata key, not '\(key.prefix(40))'") }
            let config = index["config"]
            let function = config?["embedding_function"].flatMap { $0.isNull ? nil : JSON.serialize($0) }
            sparse.append(SparseDeclaration(key: key, bm25: config?["bm25"]?.boolValue ?? false, sourceKey: config?["source_key"]?.stringValue,
                                            embeddingFunction: function))
        }
        return (sparse.sorted { $0.key < $1.key }, fullText)
    }

    /// Whether Chroma's configuration names all-MiniLM-L6-v2 as the collection's
    /// embedding function: Chroma's default (ONNX) function, or the
    /// sentence-transformers one with that model.
    public static func namesMiniLM(_ configuration: JSONValue?) -> Bool {
        guard let function = configuration?["embedding_function"], !function.isNull else { return false }
        let name = function["name"]?.stringValue ?? ""
        if name == "default" || name == "onnx_mini_lm_l6_v2" { return true }
        let model = function["config"]?["model_name"]?.stringValue ?? ""
        return name == "sentence_transformer" && (model == "all-MiniLM-L6-v2" || model == "sentence-transformers/all-MiniLM-L6-v2")
    }
}
