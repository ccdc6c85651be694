/// The bound on records in one write batch (and ids in one get), shared by
/// every layer that carries a batch: storage refuses more, the protocol and the
/// client check it before sending, the ingestion worker sizes its upserts by it.
/// One constant, so the layers can never disagree (ChromaDB's SQLite build caps
/// a batch at 5,461).
public enum BatchLimits {
    public static let maximumRecords = 16_384
}
