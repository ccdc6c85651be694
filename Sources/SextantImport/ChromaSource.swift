import SextantChroma
import SextantJSON
import SextantPayload

public enum ChromaImportError: Error, Sendable, CustomStringConvertible, Equatable {
    /// A file that does not read as Chroma wrote it.
    case format(String)
    /// The source cannot be reached or answered an error.
    case source(String)
    /// The target refuses the import (for example a same-named collection it did not make).
    case target(String)

    public var description: String {
        switch self {
        case .format(let message): return "not a Chroma persist directory as expected: \(message)"
        case .source(let message): return "Chroma source: \(message)"
        case .target(let message): return message
        }
    }
}

/// A collection as the source holds it.
public struct ChromaCollection: Sendable {
    public var id: String
    public var name: String
    public var dimension: Int?
    /// The user's collection metadata (Chroma's `metadata`).
    public var metadata: Metadata
    /// Chroma's `configuration_json` (hnsw space, embedding function), as stored.
    public var configuration: JSONValue?
    /// Chroma's `schema` (1.x), as stored.
    public var schema: JSONValue?
    /// Records the source reports, when it knows without reading them all.
    public var count: Int?

    public init(id: String, name: String, dimension: Int?, metadata: Metadata, configuration: JSONValue?, schema: JSONValue?,
                count: Int?) {
        self.id = id
        self.name = name
        self.dimension = dimension
        self.metadata = metadata
        self.configuration = configuration
        self.schema = schema
        self.count = count
    }
}

public struct ChromaRecord: Sendable, Equatable {
    public var id: String
    public var vector: [Float]
    public var document: String?
    public var metadata: Metadata?

    public init(id: String, vector: [Float], document: String?, metadata: Metadata?) {
        self.id = id
        self.vector = vector
        self.document = document
        self.metadata = metadata
    }
}

/// One page of records, in the source's stable order.
public struct ChromaPage: Sendable {
    public var records: [ChromaRecord]
    /// Where the next page starts; nil after the last.
    public var next: Int?
    /// Records the source holds but could not give whole (a record whose vector
    /// is in none of Chroma's files), with why.
    public var skipped: [String]
    /// Metadata values kept as JSON text, Sextant having no arrays.
    public var arraysAsText: Int

    public init(records: [ChromaRecord], next: Int?, skipped: [String], arraysAsText: Int) {
        self.records = records
        self.next = next
        self.skipped = skipped
        self.arraysAsText = arraysAsText
    }
}

/// Where an import reads from: a persist directory read directly, or a running server.
public protocol ChromaSource: Sendable {
    var description: String { get }
    func collections() async throws -> [ChromaCollection]
    /// Up to `limit` records from `position` (0 for the first page).
    func page(_ collection: ChromaCollection, from position: Int, limit: Int) async throws -> ChromaPage
    /// Changes whenever the collection's records change, so a finished import
    /// can tell that it is still current.
    func version(_ collection: ChromaCollection) async throws -> String
}

/// Chroma's way of storing a record's document: as metadata under this key.
let chromaDocumentKey = "chroma:document"

/// Metadata as Chroma's JSON holds it, to Sextant's. Chroma 1.5's array values
/// have no Sextant counterpart: they are kept as their JSON text, and named in
/// `arrayKeys`. A `null` value (an update that removes a key) is returned in `removed`.
func chromaMetadata(_ json: JSONValue) throws -> (metadata: Metadata, removed: [String], arrayKeys: Set<String>) {
    guard case .object(let fields) = json else { throw ChromaImportError.format("metadata is \(json.typeName), not an object") }
    var metadata: Metadata = [:]
    var removed: [String] = []
    var arrayKeys: Set<String> = []
    for (key, value) in fields {
        switch value {
        case .null: removed.append(key)
        case .array:
            metadata[key] = .string(JSON.serialize(value))
            arrayKeys.insert(key)
        default:
            do {
                guard let converted = try ChromaGrammar.metadata(.object([key: value]), path: "metadata")?[key] else { continue }
                metadata[key] = converted
            } catch {
                throw ChromaImportError.format(error.message)
            }
        }
    }
    return (metadata, removed, arrayKeys)
}
