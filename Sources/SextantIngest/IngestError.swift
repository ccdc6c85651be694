/// What the ingestion worker reports when a file, its mapping, the embedder
/// or the engine refuses. Kept apart from the mapping so that the CSV reader,
/// which throws it, stands alone (the fuzz targets compile it by itself).
public enum IngestError: Error, Sendable, CustomStringConvertible, Equatable {
    case mapping(String)
    case source(String)
    case embedderMismatch(String)
    case engine(String)

    public var description: String {
        switch self {
        case .mapping(let message): return "mapping: \(message)"
        case .source(let message): return "source: \(message)"
        case .embedderMismatch(let message): return message
        case .engine(let message): return "engine: \(message)"
        }
    }
}

