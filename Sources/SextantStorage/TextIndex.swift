import SextantText

/// A collection's BM25 index over its documents. Queries search it in
/// parallel under a shared lock; every change (a batch at the end of its
/// apply, so an acknowledged write is already searchable; a build; a reset)
/// is made on a copy, which shares every list it does not touch, and swapped
/// in under an exclusive lock taken only between readers: no query waits for
/// a change, nor behind a writer queued for the lock. Slots are the
/// collection's record slots, which keep their numbers across generations.
///
/// Durable like the rest of a generation: a checkpoint writes it as one
/// checksummed file (`fileName`), the open reads it back and replays the WAL
/// after the checkpoint through the same `apply`. A generation without the
/// file (the index enabled since, or a file of another format version) builds
/// it from the records instead.
final class CollectionTextIndex: @unchecked Sendable {
    static let fileName = "text.bm25"

    /// One document's change: its terms, or nil when the slot no longer holds it.
    struct Change {
        var slot: UInt32
        var terms: [String]?
    }

    private let lock = ReadWriteLock()
    /// Guarded by `lock`; nil while the collection has no text index.
    private var index: BM25Index?
    /// Guarded by `lock`; while a build runs beside the writers, the changes
    /// of every batch applied meanwhile, for the built index to catch up on.
    private var pending: [Change]?
    /// Writes tokenize through the shared term cache; queries without it (see `Tokenizer.init`).
    private let tokenizer = Tokenizer()
    private let queryTokenizer = Tokenizer(sharedCache: false)

    var isEnabled: Bool { lock.withShared { index != nil } }
    /// Batches must report their documents' changes: an index is served or being built.
    var wantsChanges: Bool { lock.withShared { index != nil || pending != nil } }

    /// Starts collecting changes for a build; false when one already runs.
    /// Called under the collection's writer lock, so no batch is half-collected.
    func beginBuild() -> Bool {
        lock.withExclusiveBetweenReaders {
            guard pending == nil else { return false }
            pending = []
            return true
        }
    }

    /// Installs a built index after replaying the changes collected since
    /// `beginBuild` on it: each change is a document's whole new state, so in
    /// order they leave every slot as the collection has it, whether the build
    /// read the slot before or after the change. Under the writer lock, so
    /// no batch adds to the changes while they are replayed.
    func finishBuild(_ built: BM25Index) {
        var built = built
        for change in lock.withShared({ pending ?? [] }) {
            if let terms = change.terms { built.set(slot: change.slot, terms: terms) } else { built.remove(slot: change.slot) }
        }
        built.compact()
        install(built, endingBuild: true)
    }

    func cancelBuild() { lock.withExclusiveBetweenReaders { pending = nil } }

    /// Replaces the whole index (open, enable, disable).
    func reset(_ replacement: BM25Index?) {
        if let replacement { precondition(!replacement.needsCompaction, "an index is compacted before it is served") }
        install(replacement, endingBuild: false)
    }

    /// Swaps `replacement` in; the version it replaces is freed after the lock.
    private func install(_ replacement: BM25Index?, endingBuild: Bool, recording changes: [Change] = []) {
        let replaced = lock.withExclusiveBetweenReaders { () -> BM25Index? in
            pending?.append(contentsOf: changes)
            if endingBuild { pending = nil }
            defer { index = replacement }
            return index
        }
        _ = replaced
    }

    func terms(_ document: [UInt8]?) -> [String] {
        guard let document, !document.isEmpty else { return [] }
        return tokenizer.tokens(String(decoding: document, as: UTF8.self))
    }

    /// One batch's changes. The writer changes and compacts a copy while
    /// queries go on reading the index (the copy shares every list it does
    /// not touch), then swaps it in between readers: queries never wait for
    /// the batch, nor behind a writer waiting for its turn. One writer at a
    /// time: apply runs under the collection's writer lock.
    func apply(_ changes: [Change]) {
        guard !changes.isEmpty else { return }
        var working = lock.withShared { index }
        if working != nil {
            for change in changes {
                if let terms = change.terms { working?.set(slot: change.slot, terms: terms) } else { working?.remove(slot: change.slot) }
            }
            working?.compact()
        }
        // Without an index (a build only collecting changes) `working` is nil, as the index stays.
        install(working, endingBuild: false, recording: changes)
    }

    /// The exact BM25 top `k` for the query text among accepted slots.
    func search(_ text: String, k: Int, accept: (UInt32) -> Bool) -> [BM25Index.Hit] {
        let queryTerms = queryTokenizer.tokens(text)
        guard !queryTerms.isEmpty else { return [] }
        return withoutActuallyEscaping(accept) { accept in
            lock.withShared { index?.searchCompacted(queryTerms, k: k, accept: accept) ?? [] }
        }
    }

    /// The same over every document in the index.
    func searchEverything(_ text: String, k: Int) -> [BM25Index.Hit] {
        let queryTerms = queryTokenizer.tokens(text)
        guard !queryTerms.isEmpty else { return [] }
        return lock.withShared { index?.searchCompacted(queryTerms, k: k) ?? [] }
    }

    /// Which of `slots` may hold `phrase` verbatim: a document that does holds
    /// each of the phrase's terms, which the postings answer without reading
    /// a document. Conservative only for ASCII phrases (the phrase's words and
    /// the tokenizer's then split alike): other phrases pass every slot.
    func mayHold(_ phrase: String, among slots: [UInt32]) -> [Bool] {
        guard phrase.utf8.allSatisfy({ $0 < 0x80 }) else { return slots.map { _ in true } }
        let terms = queryTokenizer.tokens(phrase)
        guard !terms.isEmpty else { return slots.map { _ in true } }
        return lock.withShared { index?.holdingAll(terms, among: slots) ?? slots.map { _ in true } }
    }

    /// The stored form, or nil without an index (called with writers paused).
    func serialized() -> [UInt8]? { lock.withExclusive { index?.serialized() } }

    /// An index of every live record's document in `generation`.
    func build(_ settings: TextIndexSettings, from generation: Generation, pace: () -> Void = {}) -> BM25Index {
        var built = BM25Index(parameters: BM25Index.Parameters(k1: settings.k1, b: settings.b))
        for slot in 0..<UInt32(generation.index.slotHighWater) where generation.records.isLive(slot) {
            pace()
            guard let record = generation.records.record(slot), let document = record.document else { continue }
            built.set(slot: slot, terms: terms(Array(document)))
        }
        built.compact()
        return built
    }

    /// The index a generation's file holds, if it is there, of this format
    /// version and of these parameters; nil means build it from the records.
    static func load(disk: Files, directory: String, manifest: Manifest, settings: TextIndexSettings) throws -> BM25Index? {
        guard manifest.files[fileName] != nil else { return nil }
        let path = directory + "/" + fileName
        let bytes = try disk.readAll(path)
        let loaded: BM25Index
        do { loaded = try BM25Index(serialized: bytes) } catch {
            // The file's checksum held, so this is another format version.
            StorageLog.write("\(path): \(error); rebuilding the text index from the records")
            return nil
        }
        guard loaded.parameters == BM25Index.Parameters(k1: settings.k1, b: settings.b) else { return nil }
        return loaded
    }
}
