/// Which model made a collection's vectors. Recorded in the collection's
/// metadata, so a text query is embedded by the same model, or refused.
public struct EmbedderDescriptor: Sendable, Hashable, Codable, CustomStringConvertible {
    public var name: String
    public var version: String
    public var dimension: Int

    public init(name: String, version: String, dimension: Int) {
        self.name = name
        self.version = version
        self.dimension = dimension
    }

    /// "name@version", the value stored under `metadataKey`.
    public var identifier: String { "\(name)@\(version)" }
    public var description: String { "\(identifier) (\(dimension)-d)" }

    /// Collection metadata keys that record the embedder.
    public static let metadataKey = "sextant:embedder"
    public static let dimensionMetadataKey = "sextant:embedder_dimension"
}

public struct EmbeddingError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        case unavailable
        case invalidInput
        case remote
        case budgetExhausted
    }
    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

/// Turns texts into vectors. Implementations: the built-in hashing embedder
/// (no model, no network), all-MiniLM-L6-v2 in Swift, OpenAI-compatible and
/// Gemini HTTP clients, and precomputed vectors from a file.
public protocol Embedder: Sendable {
    var descriptor: EmbedderDescriptor { get }
    /// One vector per text, in order, each `descriptor.dimension` long and L2-normalised.
    func embed(_ texts: [String]) async throws -> [[Float]]
}

/// The embedders a process can use, by identifier.
public struct EmbedderRegistry: Sendable {
    public private(set) var embedders: [String: any Embedder] = [:]
    /// Used for collections created without naming one.
    public var defaultIdentifier: String

    public init(default embedder: any Embedder) {
        defaultIdentifier = embedder.descriptor.identifier
        register(embedder)
    }

    public mutating func register(_ embedder: any Embedder) {
        embedders[embedder.descriptor.identifier] = embedder
    }

    public var `default`: any Embedder { embedders[defaultIdentifier] ?? HashingEmbedder() }

    public func embedder(_ identifier: String) -> (any Embedder)? { embedders[identifier] }
}
