import SextantIndex
import SextantPayload

/// Storage failures, each mapped to one protocol status by the engine.
public enum StorageError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The request is malformed (wrong dimension, NaN, oversize id, duplicate ids, bad filter...).
    case invalidArgument(String)
    case notFound(String)
    case alreadyExists(String)
    /// A bound was hit (collection capacity, too many collections, backpressure gave up).
    case resourceExhausted(String)
    /// A file failed its checksum or does not parse; the message names the file.
    case corrupted(String)
    /// The operating system refused (I/O error, no space); the collection stops accepting writes.
    case io(String)
    /// The collection is closed or failed.
    case unavailable(String)
    /// The collection lacks what the request needs (a text index for a lexical search).
    case failedPrecondition(String)

    /// The message without the kind's prefix.
    public var message: String {
        switch self {
        case .invalidArgument(let message), .notFound(let message), .alreadyExists(let message),
            .resourceExhausted(let message), .corrupted(let message), .io(let message), .unavailable(let message),
            .failedPrecondition(let message):
            return message
        }
    }

    public var description: String {
        switch self {
        case .invalidArgument(let message): return "invalid argument: \(message)"
        case .notFound(let message): return "not found: \(message)"
        case .alreadyExists(let message): return "already exists: \(message)"
        case .resourceExhausted(let message): return "resource exhausted: \(message)"
        case .corrupted(let message): return "corrupted: \(message)"
        case .io(let message): return "I/O error: \(message)"
        case .unavailable(let message): return "unavailable: \(message)"
        case .failedPrecondition(let message): return "failed precondition: \(message)"
        }
    }

    init(_ error: IndexError) {
        switch error {
        case .invalidParameter(let message): self = .invalidArgument(message)
        case .dimensionMismatch(let expected, let actual):
            self = .invalidArgument("vector has \(actual) dimensions, the collection has \(expected)")
        case .nonFiniteVector: self = .invalidArgument("vector contains NaN or infinity")
        case .capacityExceeded(let message), .outOfMemory(let message): self = .resourceExhausted(message)
        case .slotInUse, .slotOutOfRange: self = .unavailable("internal slot error: \(error)")
        case .corrupted(let message): self = .corrupted(message)
        }
    }

    init(_ error: PayloadError) {
        switch error {
        case .invalidMetadata(let message): self = .invalidArgument("metadata: \(message)")
        case .invalidFilter(let message): self = .invalidArgument(message)
        case .corrupted(let message): self = .corrupted(message)
        }
    }
}

