import SextantIndex
import SextantKernels
import SextantPayload

/// Every bound the storage layer enforces. Documented in docs/LIMITS.md.
public enum StorageLimits {
    public static let maximumIdBytes = 1_024
    public static let maximumDocumentBytes = 4 << 20
    /// Records per write batch (see `BatchLimits`).
    public static let maximumBatchRecords = BatchLimits.maximumRecords
    /// Encoded bytes of one WAL entry (a batch).
    public static let maximumEntryBytes = 96 << 20
    public static let maximumCollectionNameBytes = 512
    /// Query text of a lexical or hybrid search (its terms, not a document).
    public static let maximumQueryTextBytes = 16 << 10
    public static let maximumCollections = 256
    /// Slots a new collection reserves address space for unless it gives its own
    /// hint. Not a ceiling: a collection that fills its reservation grows at a
    /// checkpoint, up to `maximumCollectionCapacity`.
    public static let defaultCollectionCapacity = 1 << 20
    /// Slot ids are 32-bit; a generation reserves address space for its slots.
    public static let maximumCollectionCapacity = 1 << 30
    /// The slots a generation reserves: the hint, or twice the slots in use
    /// (rounded up to a power of two), whichever is more; never past the maximum.
    public static func reservedSlots(hint: Int, slotsInUse: Int) -> Int {
        var reserved = max(hint, 1)
        while reserved < 2 * slotsInUse && reserved < maximumCollectionCapacity { reserved *= 2 }
        return min(reserved, maximumCollectionCapacity)
    }
    /// Address space a generation reserves for its record heap (documents +
    /// metadata + ids), at least: four times the compacted heap when that is more.
    public static let recordHeapReservationBytes = 16 << 30
    public static func reservedHeapBytes(compacted: Int) -> Int { max(recordHeapReservationBytes, 4 * compacted) }
    /// What a collection's graph walk reads unless it says (`Quantization`):
    /// int8 codes, a quarter of the float16 vectors' bytes, which then stay on
    /// disk. On debian-minilm it answers with float16's recall at more QPS
    /// (docs/BENCHMARKS.md, "Compressed traversal"); bits1 needs twice the ef.
    public static let defaultQuantization: Quantization = .int8
    /// Written but not yet indexed records; writers wait beyond this.
    public static let unindexedTailCapacity = 1 << 15
    /// A collection may keep a smaller bound while queries run (one in the last
    /// `readerActivityWindowMilliseconds`): every query pays for the tail, so a
    /// small bound admits writes only as fast as the indexer links them and keeps
    /// queries near their idle cost; with no reader the full bound absorbs a
    /// burst at WAL speed. The default keeps one bound (the seed's 20,000-record
    /// batch acknowledged in seconds while queries run); the engine's
    /// `--reads-first` uses this one.
    public static let readsFirstUnindexedTail = 1 << 11
    public static let readerActivityWindowMilliseconds = 250
    /// Tail records an unfiltered query scores exactly: the nearest by sign code,
    /// about a sixteenth of the tail, at least 16·k and at most max(1,024, 64·k).
    /// The Hamming rank of a true top-10 record grows with the tail's size
    /// (debian-minilm, `tools/analysis/sign-rank.py`: 99.75% within 256 of a
    /// 4,096-record tail, 99.5% within 768 of 32,768).
    /// Below twice this count the whole tail is scored.
    public static func tailRerankCount(k: Int, tailRecords: Int) -> Int {
        min(max(16 * k, tailRecords / 16), max(1_024, 64 * k))
    }
    /// A collection this large indexes a metadata field by itself once
    /// `automaticPayloadIndexFilterUses` queries or gets have filtered on it
    /// without an index (`sextant engine --automatic-index-records`, 0: never).
    /// Below it a filter's record-by-record check is cheap enough.
    public static let automaticPayloadIndexRecords = 100_000
    public static let automaticPayloadIndexFilterUses = 32
    /// Distinct unindexed keys counted per collection; keys beyond are not counted.
    public static let maximumCountedFilterKeys = 1_024
    /// WAL bytes after which a checkpoint folds the log into the files.
    public static let checkpointWALBytes = 64 << 20
    /// WAL bytes a collection keeps past its checkpoint for a shipper that has
    /// not sent them yet (an unreachable bucket); beyond, the oldest go and the
    /// followers behind them need a newer snapshot.
    public static let maximumUnshippedWALBytes = 1 << 30
    /// Bytes of log one shipped object holds at most (one larger entry goes alone).
    public static let maximumShippedChunkBytes = 16 << 20
}
