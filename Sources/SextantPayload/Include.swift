/// Which parts of a record a read returns. One set for every door: the engine,
/// the client and the Chroma-compatible API read and write this type.
public struct Include: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let documents = Include(rawValue: 1)
    public static let metadatas = Include(rawValue: 2)
    public static let vectors = Include(rawValue: 4)
    public static let distances = Include(rawValue: 8)
    public static let all: Include = [.documents, .metadatas, .vectors, .distances]
    /// ChromaDB's defaults for get and query.
    public static let getDefault: Include = [.documents, .metadatas]
    public static let queryDefault: Include = [.documents, .metadatas, .distances]
}
