/// How a search ranks records: by vector distance (`semantic`), by BM25 over
/// their documents (`lexical`, needs the collection's text index), or both
/// fused by reciprocal rank (`hybrid`).
public enum SearchMode: String, Sendable, CaseIterable, Codable {
    case semantic, lexical, hybrid
}

/// Reciprocal rank fusion (Cormack et al. 2009): a record scores
/// Σ weight / (k + rank) over the rankings that hold it (rank from 1). Ranks,
/// not raw scores, so BM25's unbounded scores and cosine distances need no
/// common scale; k 60 is the paper's and Chroma's `Rrf` default.
public struct RankFusion: Sendable, Equatable {
    public static let defaultK = 60.0
    public var k: Double
    public var semanticWeight: Double
    public var lexicalWeight: Double
    /// Records holding the query's words verbatim and in order (two words or
    /// more) rank before all others, in fused order among themselves.
    public var phraseFirst: Bool

    public init(k: Double = RankFusion.defaultK, semanticWeight: Double = 1, lexicalWeight: Double = 1, phraseFirst: Bool = true) {
        self.k = k
        self.semanticWeight = semanticWeight
        self.lexicalWeight = lexicalWeight
        self.phraseFirst = phraseFirst
    }

    /// Each ranking's contribution by position (0-based index in the ranking).
    public func contribution(rank: Int, weight: Double) -> Double { weight / (k + Double(rank + 1)) }

    public var isValid: Bool {
        k.isFinite && k >= 0 && semanticWeight.isFinite && semanticWeight >= 0 && lexicalWeight.isFinite && lexicalWeight >= 0
            && semanticWeight + lexicalWeight > 0
    }
}
