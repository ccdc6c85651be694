/// The built-in embedder that needs no model and no network ("sextant-hash@1").
///
/// What it computes: the text is lower-cased and split into words (runs of
/// letters and digits, any script); each word and each pair of adjacent words
/// is hashed (FNV-1a, 64-bit) to one of `dimension` buckets with a sign from
/// another hash bit, weighted 1 + log(count); the vector is L2-normalised.
/// Cosine similarity then measures weighted overlap of words and word pairs.
///
/// Its limits: it is lexical, not semantic. "download files over HTTP" finds
/// texts with those words, not "curl" unless the text says so; synonyms,
/// paraphrases and other languages do not match; hash collisions add small
/// noise. It exists so that text search works out of the box on any machine;
/// all-MiniLM-L6-v2 replaces it as the default wherever its weights are installed.
public struct HashingEmbedder: Embedder {
    public let descriptor: EmbedderDescriptor
    /// Bound on the text considered per input (characters), so one huge document cannot stall a batch.
    public static let maximumCharacters = 100_000

    public init(dimension: Int = 384) {
        descriptor = EmbedderDescriptor(name: "sextant-hash", version: "1", dimension: dimension)
    }

    public func embed(_ texts: [String]) async throws -> [[Float]] { texts.map(vector) }

    public func vector(_ text: String) -> [Float] {
        let dimension = descriptor.dimension
        var counts: [UInt64: Int] = [:]
        var previous: UInt64? = nil
        for word in Self.words(text) {
            let hash = Self.fnv1a(word)
            counts[hash, default: 0] += 1
            if let previous { counts[previous &* 0x9E37_79B9_7F4A_7C15 ^ hash, default: 0] += 1 }
            previous = hash
        }
        var vector = [Float](repeating: 0, count: dimension)
        for (hash, count) in counts {
            let bucket = Int(hash % UInt64(dimension))
            let sign: Float = (hash >> 63) == 0 ? 1 : -1
            vector[bucket] += sign * (1 + Float(log(Double(count))))
        }
        let norm = vector.reduce(0) { $0 + $1 * $1 }.squareRoot()
        if norm > 0 { for index in vector.indices { vector[index] /= norm } }
        return vector
    }

    static func words(_ text: String) -> [[UInt8]] {
        var words: [[UInt8]] = []
        var current = ""
        for character in text.prefix(maximumCharacters) {
            if character.isLetter || character.isNumber {
                current.append(contentsOf: character.lowercased())
            } else if !current.isEmpty {
                words.append(Array(current.utf8))
                current = ""
            }
        }
        if !current.isEmpty { words.append(Array(current.utf8)) }
        return words
    }

    static func fnv1a(_ bytes: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        return hash
    }
}

#if canImport(Glibc)
import Glibc
#endif
