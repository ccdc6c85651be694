import Foundation
import Logging
import SextantClient
import SextantJSON
import SextantEmbedding
import SextantObjectStore
import SextantRetrieval
import SextantSupport
import SextantPayload

public struct IngestConfiguration: Sendable {
    public var collection: String
    /// Nil: the file written for the header under `mappingsFolder`, else inferred (`MappingInference`).
    public var mapping: Mapping?
    /// Rows per upsert (the engine takes at most 16,384).
    public var batchRows = 1_000
    /// A batch also closes once it spans this many bytes of the file, so a
    /// file of very long rows is held a few megabytes at a time, like any other.
    public var batchBytes = 16 << 20
    /// ROOT/ingest holds the ledger, the spool for downloads and the quarantine files.
    public var dataRoot: String
    /// The fvecs file for a mapping with `precomputed_vectors`.
    public var vectorsPath: String?
    public var csvLimits = CSVLimits()
    public var showProgress = true
    /// BM25 over the documents of a collection this worker creates (nil: none).
    public var textIndex: TextIndexOptions? = TextIndexOptions()

    public static let maximumBatchRows = BatchLimits.maximumRecords

    public init(collection: String, dataRoot: String) {
        self.collection = collection
        self.dataRoot = dataRoot
    }

    var ingestRoot: String { dataRoot + "/ingest" }
    var ledgerPath: String { ingestRoot + "/ledger.sqlite" }
    var spool: String { ingestRoot + "/spool" }
    var quarantineFolder: String { ingestRoot + "/quarantine" }
    /// Mappings inferred for files that came without one, for the user to read and edit.
    public var mappingsFolder: String { ingestRoot + "/mappings" }
}

/// `sextant ingest`: takes CSV files from a source, turns rows into records
/// (mapping → cleanup and enrichment → vectors), upserts them in batches, and
/// keeps a ledger so every file is processed once and a killed run resumes
/// after its last acknowledged batch.
public final class IngestWorker: Sendable {
    let client: SextantClient
    let source: any IngestSource
    let embedder: (any Embedder)?
    let enrichers: [any Enricher]
    let configuration: IngestConfiguration
    let ledger: Ledger
    let precomputed: PrecomputedVectors?
    let logger: Logger

    public init(client: SextantClient, source: any IngestSource, embedder: (any Embedder)?, enrichers: [any Enricher],
                configuration: IngestConfiguration, logger: Logger) throws {
        guard (1...IngestConfiguration.maximumBatchRows).contains(configuration.batchRows) else {
            throw IngestError.mapping("batch must be 1...\(IngestConfiguration.maximumBatchRows) rows")
        }
        self.client = client
        self.source = source
        self.enrichers = enrichers
        self.configuration = configuration
        self.logger = logger
        ledger = try Ledger(path: configuration.ledgerPath)
        if let vectors = configuration.mapping?.precomputed {
            guard let path = configuration.vectorsPath else {
                throw IngestError.mapping("the mapping uses precomputed vectors: pass the fvecs file with --vectors")
            }
            precomputed = try PrecomputedVectors(path: path, dimension: vectors.dimension)
            self.embedder = nil
        } else {
            guard let embedder else { throw IngestError.mapping("no embedder and no precomputed vectors") }
            precomputed = nil
            self.embedder = embedder
        }
    }

    /// What made (or will make) this collection's vectors.
    var descriptor: EmbedderDescriptor {
        if let vectors = configuration.mapping?.precomputed {
            let parts = vectors.embedder.split(separator: "@", maxSplits: 1).map(String.init)
            return EmbedderDescriptor(name: parts[0], version: parts.count > 1 ? parts[1] : "1", dimension: vectors.dimension)
        }
        return embedder?.descriptor ?? HashingEmbedder().descriptor
    }

    /// The collection, bound to this worker's embedder (see `EmbedderBinding`).
    func collection() async throws -> CollectionHandle {
        logger.info("opening collection \(configuration.collection) for \(descriptor)")
        do { return try await EmbedderBinding.open(
            client: client, name: configuration.collection, embedder: descriptor, textIndex: configuration.textIndex) } catch
            let error as EmbedderBindingError
        {
            throw IngestError.embedderMismatch(error.message)
        }
    }

    /// Runs on `schedule` until cancelled; logs the next run time.
    public func run(schedule: Schedule) async throws {
        while true {
            let summary = try await runOnce()
            // A scheduled run that found nothing new says so quietly: once a minute is noise.
            if summary.files + summary.filesFailed > 0 {
                logger.notice("run finished: \(summary.line)")
            } else {
                logger.debug("run finished: \(summary.line)")
            }
            guard let next = schedule.next(after: Date()) else { return }
            logger.notice("next run at \(ISO8601DateFormatter().string(from: next)) (\(schedule))")
            let wait = max(0, next.timeIntervalSinceNow)
            try await Task.sleep(nanoseconds: UInt64(wait * 1e9))
        }
    }

    /// One pass over the source: every new or changed file, to the end.
    public func runOnce() async throws -> IngestSummary {
        let started = Date()
        let clock = ContinuousClock.now
        var summary = IngestSummary()
        // Resolved on the first file to process, so an empty inbox creates nothing.
        var resolvedHandle: CollectionHandle? = nil
        try FileManager.default.createDirectory(atPath: configuration.spool, withIntermediateDirectories: true)
        for file in try await source.candidates() {
            if try ledger.isDone(source: source.identity, name: file.name, etag: file.etag, sizeBytes: file.sizeBytes,
                                 collection: configuration.collection) {
                summary.filesSkipped += 1
                continue
            }
            if let urlSource = source as? URLSource { urlSource.remember(try lastValidator(file.name)) }
            guard let local = try await source.fetch(file, spool: configuration.spool) else {
                summary.filesSkipped += 1  // not modified since the last run
                continue
            }
            let sha = try sha256Hex(ofFile: local)
            let size = (try? FileManager.default.attributesOfItem(atPath: local)[.size] as? NSNumber)?.intValue ?? file.sizeBytes
            var etag = file.etag
            if let urlSource = source as? URLSource { etag = urlSource.lastValidator }
            let known = try ledger.entry(source: source.identity, name: file.name, sha256: sha, collection: configuration.collection)
            if known?.status == "failed", !(source is FolderSource) {
                // Failed before with these very bytes: not retried until the file changes.
                summary.filesSkipped += 1
                continue
            }
            if let existing = known, existing.status == "done" {
                summary.filesSkipped += 1
                _ = try ledger.begin(source: source.identity, name: file.name, sizeBytes: size, sha256: sha, etag: etag,
                                     collection: configuration.collection)
                try await source.finished(file, localPath: local)
                continue
            }
            let handle: CollectionHandle
            if let resolvedHandle { handle = resolvedHandle } else {
                handle = try await collection()
                resolvedHandle = handle
            }
            let entry = try ledger.begin(source: source.identity, name: file.name, sizeBytes: size, sha256: sha, etag: etag,
                                         collection: configuration.collection)
            if entry.rowsDone > 0 { logger.notice("resuming \(file.name) after row \(entry.rowsDone)") }
            do {
                let outcome = try await process(path: local, name: file.name, entry: entry, handle: handle)
                try ledger.finish(fileID: entry.id, error: nil)
                try writeQuarantineFile(entry: entry, name: file.name, sha: sha)
                summary.files += 1
                summary.rowsIngested += outcome.ingested
                summary.rowsQuarantined += outcome.quarantined
                summary.enrichmentFailures += outcome.enrichmentFailures
                logger.notice("\(file.name): \(outcome.ingested) rows ingested, \(outcome.quarantined) quarantined")
                try await source.finished(file, localPath: local)
            } catch let error as IngestError {
                // A file-level problem (header, mapping, vectors): recorded, put
                // aside where the source can, said once, and the run goes on.
                try ledger.finish(fileID: entry.id, error: error.description)
                summary.filesFailed += 1
                if let aside = try await source.failed(file, localPath: local, reason: error.description) {
                    logger.error("\(file.name) was not ingested: \(error). Moved to \(aside) (the reason is in \(aside).reason); fix it, or write a mapping, and put it back in the inbox.")
                } else {
                    logger.error("\(file.name) was not ingested: \(error). It is not retried until it changes.")
                }
            }
        }
        summary.seconds = (ContinuousClock.now - clock).seconds
        try ledger.recordRun(started: started.timeIntervalSince1970, summary: summary)
        if summary.rowsIngested > 0, let handle = resolvedHandle {
            // Tells the bot gateway (and anyone else waiting) that this collection has new data.
            let stamp = ISO8601DateFormatter().string(from: started).replacingOccurrences(of: ":", with: "")
            let event = try await handle.publishUpdate(runID: "ingest-\(stamp)", source: "ingest",
                                                       counts: ["files": summary.files, "rows_ingested": summary.rowsIngested])
            summary.updateSequence = event.sequence
        }
        return summary
    }

    private func lastValidator(_ name: String) throws -> String? {
        try ledger.database.query("""
            SELECT etag FROM files WHERE source = ? AND name = ? AND collection = ? AND status = 'done' ORDER BY id DESC LIMIT 1
            """, [.text(source.identity), .text(name), .text(configuration.collection)]).first?.first?.text
    }

    struct Outcome {
        var ingested = 0
        var quarantined = 0
        var enrichmentFailures = 0
    }

    /// A batch on its way to the engine.
    struct Batch: Sendable {
        var rows: [IngestRow] = []
        var quarantined: [Ledger.Quarantined] = []
        /// Data rows of the file that are final once this batch is acknowledged.
        var rowsDoneAfter = 0
        var bytesRead = 0
    }

    func process(path: String, name: String, entry: Ledger.FileEntry, handle: CollectionHandle) async throws -> Outcome {
        var reader = try CSVReader(path: path, limits: configuration.csvLimits)
        defer { reader.close() }
        guard let header = try reader.next() else { throw IngestError.source("\(name) is empty") }
        if let problem = header.problem { throw IngestError.source("\(name): header: \(problem)") }
        let mapping = try configuration.mapping ?? mappingFor(header: header.fields, path: path, name: name)
        let resolved = try mapping.resolve(header: header.fields)
        try await recordDateFields(mapping, handle)
        var firstVectorRow: Int? = nil
        if let vectors = mapping.precomputed {
            let base = (name as NSString).lastPathComponent
            guard let first = vectors.firstRow[name] ?? vectors.firstRow[base] else {
                throw IngestError.mapping("precomputed_vectors.first_row has no entry for \(base)")
            }
            firstVectorRow = first
        }
        let progress = ProgressReporter(name: (name as NSString).lastPathComponent, totalBytes: reader.sizeBytes, logger: logger,
                                        terminal: configuration.showProgress && isatty(2) == 1)
        var batch = Batch()
        var batchStartBytes = reader.bytesConsumed
        var row = 0
        var pending: Task<Outcome, any Error>? = nil
        var totals = Outcome()

        // Prepares (enrich, vectors) while the previous batch is being written;
        // writes and ledger commits stay in file order.
        func ship(_ ready: Batch) async throws {
            let prepared = try await prepare(ready, firstVectorRow: firstVectorRow)
            if let previous = pending { totals = merge(totals, try await previous.value) }
            pending = Task { try await self.write(prepared, entry: entry, handle: handle) }
            progress.batch(rows: entry.rowsIngested + totals.ingested + prepared.batch.rows.count,
                           quarantined: entry.rowsQuarantined + totals.quarantined, bytes: ready.bytesRead)
        }

        while let record = try reader.next() {
            defer { row += 1 }
            guard row >= entry.rowsDone else { continue }
            if let problem = record.problem {
                batch.quarantined.append(Ledger.Quarantined(line: record.line, reason: problem, raw: record.rawPrefix))
            } else {
                switch resolved.convert(record.fields, row: row, line: record.line) {
                case .success(let converted): batch.rows.append(converted)
                case .failure(let problem):
                    batch.quarantined.append(Ledger.Quarantined(line: record.line, reason: problem.reason, raw: record.rawPrefix))
                }
            }
            if batch.rows.count >= configuration.batchRows || batch.quarantined.count >= configuration.batchRows
                || reader.bytesConsumed - batchStartBytes >= configuration.batchBytes
            {
                batch.rowsDoneAfter = row + 1
                batch.bytesRead = reader.bytesConsumed
                try await ship(batch)
                batch = Batch()
                batchStartBytes = reader.bytesConsumed
            }
        }
        if !batch.rows.isEmpty || !batch.quarantined.isEmpty {
            batch.rowsDoneAfter = row
            batch.bytesRead = reader.bytesConsumed
            try await ship(batch)
        }
        if let previous = pending { totals = merge(totals, try await previous.value) }
        progress.done()
        return totals
    }

    /// The mapping for a file that came without one: the file written for
    /// this header earlier (as inferred, or as the user edited it), else one
    /// inferred from the header and the first rows, written there and logged.
    func mappingFor(header: [String], path: String, name: String) throws -> Mapping {
        let file = Self.mappingPath(folder: configuration.mappingsFolder, collection: configuration.collection, header: header)
        if FileManager.default.fileExists(atPath: file) { return try Mapping.load(path: file) }
        var reader = try CSVReader(path: path, limits: configuration.csvLimits)
        defer { reader.close() }
        _ = try reader.next()
        // Types, ids and prose are told from a field's first few kilobytes: a
        // sample of long rows is not held whole.
        var sample: [[String]] = []
        while sample.count < MappingInference.sampleRows, let record = try reader.next() {
            if record.problem == nil {
                sample.append(record.fields.map { $0.utf8.count > MappingInference.sampleFieldBytes
                    ? String($0.prefix(MappingInference.sampleFieldBytes / 4)) : $0 })
            }
        }
        let inferred = try MappingInference.infer(header: header, sample: sample)
        try FileManager.default.createDirectory(atPath: configuration.mappingsFolder, withIntermediateDirectories: true)
        var json = inferred.mapping.json
        if case .object(var object) = json {
            object["inferred"] = .array(inferred.notes.map(JSONValue.string))
            json = .object(object)
        }
        try Data(JSON.serialize(json, pretty: true).utf8).write(to: URL(fileURLWithPath: file), options: .atomic)
        logger.notice("\((name as NSString).lastPathComponent) came without a mapping: inferred one from its header and first \(sample.count) rows and wrote it to \(file) (edit it to change how columns are read; the edit wins from then on). \(inferred.notes.joined(separator: "; "))")
        return inferred.mapping
    }

    /// Tells the collection which of its fields hold dates and in what layout
    /// (collection metadata `DateFields.metadataKey`), so the API reads a
    /// filter's "15/01/2027" as the seconds stored.
    func recordDateFields(_ mapping: Mapping, _ handle: CollectionHandle) async throws {
        let dates = Dictionary(mapping.metadata.compactMap { column in column.dateFormat.map { (column.name, $0) } },
                               uniquingKeysWith: { first, _ in first })
        guard !dates.isEmpty else { return }
        var metadata = try await client.getCollection(name: configuration.collection).info.metadata
        let known = DateFields.formats(in: metadata)
        let merged = known.merging(dates) { _, new in new }
        guard merged != known else { return }
        metadata[DateFields.metadataKey] = .string(DateFields.encode(merged))
        do { _ = try await handle.modify(metadata: metadata) } catch { throw IngestError.engine("recording date fields: \(error)") }
    }

    /// One mapping file per collection and header: daily files of one feed share it.
    static func mappingPath(folder: String, collection: String, header: [String]) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in header.joined(separator: "\u{1f}").utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        return folder + "/" + collection + "-" + String(String(hash, radix: 16).leftPadded(16).prefix(8)) + ".json"
    }

    private func merge(_ a: Outcome, _ b: Outcome) -> Outcome {
        Outcome(ingested: a.ingested + b.ingested, quarantined: a.quarantined + b.quarantined,
                enrichmentFailures: a.enrichmentFailures + b.enrichmentFailures)
    }

    struct Prepared: Sendable {
        var batch: Batch
        var vectors: [[Float]]
        var enrichmentFailures: Int
    }

    private func prepare(_ input: Batch, firstVectorRow: Int?) async throws -> Prepared {
        var batch = input
        // Within one batch a repeated id keeps its last row (what sequential upserts would leave).
        var seen: [String: Int] = [:]
        for (index, row) in batch.rows.enumerated() { seen[row.id] = index }
        if seen.count < batch.rows.count {
            batch.rows = batch.rows.enumerated().filter { seen[$0.element.id] == $0.offset }.map(\.element)
        }
        var failures = 0
        for enricher in enrichers where !batch.rows.isEmpty {
            let (rows, failed) = await enricher.enrich(batch.rows)
            batch.rows = rows
            failures += failed
        }
        let vectors: [[Float]]
        if batch.rows.isEmpty {
            vectors = []
        } else if let precomputed, let firstVectorRow {
            // Rows are contiguous in the file but some may be quarantined or de-duplicated: read the span, pick rows.
            let first = batch.rows.map(\.row).min() ?? 0
            let last = batch.rows.map(\.row).max() ?? 0
            let span = try precomputed.vectors(first: firstVectorRow + first, count: last - first + 1)
            vectors = batch.rows.map { span[$0.row - first] }
        } else if let embedder {
            do { vectors = try await embedder.embed(batch.rows.map(\.document)) } catch {
                throw IngestError.engine("embedding failed: \(error)")
            }
        } else {
            throw IngestError.mapping("no vectors for this batch")
        }
        return Prepared(batch: batch, vectors: vectors, enrichmentFailures: failures)
    }

    /// Upserts a batch, then records it in the ledger. A batch the engine
    /// refuses as invalid is retried row by row so one bad record is
    /// quarantined with the engine's reason instead of failing the batch.
    private func write(_ prepared: Prepared, entry: Ledger.FileEntry, handle: CollectionHandle) async throws -> Outcome {
        var batch = prepared.batch
        var ingested = batch.rows.count
        if !batch.rows.isEmpty {
            do {
                try await handle.upsert(ids: batch.rows.map(\.id), vectors: prepared.vectors, documents: batch.rows.map(\.document),
                                        metadatas: batch.rows.map(\.metadata))
            } catch let error as SextantError where error.code == .invalidArgument {
                ingested = 0
                for (row, vector) in zip(batch.rows, prepared.vectors) {
                    do {
                        try await handle.upsert(ids: [row.id], vectors: [vector], documents: [row.document], metadatas: [row.metadata])
                        ingested += 1
                    } catch let rowError as SextantError where rowError.code == .invalidArgument {
                        batch.quarantined.append(Ledger.Quarantined(line: row.line, reason: "engine: \(rowError.message)", raw: row.id))
                    }
                }
            }
        }
        try ledger.commitBatch(fileID: entry.id, rowsDone: batch.rowsDoneAfter, bytesDone: batch.bytesRead, ingested: ingested,
                               quarantined: batch.quarantined, enrichmentFailures: prepared.enrichmentFailures)
        return Outcome(ingested: ingested, quarantined: batch.quarantined.count, enrichmentFailures: prepared.enrichmentFailures)
    }

    /// ROOT/ingest/quarantine/NAME.SHA8.csv: line, reason, raw start of the record.
    private func writeQuarantineFile(entry: Ledger.FileEntry, name: String, sha: String) throws {
        let rows = try ledger.quarantine(fileID: entry.id)
        guard !rows.isEmpty else { return }
        try FileManager.default.createDirectory(atPath: configuration.quarantineFolder, withIntermediateDirectories: true)
        func quote(_ text: String) -> String { "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
        var text = "line,reason,raw\r\n"
        for row in rows { text += "\(row.line),\(quote(row.reason)),\(quote(row.raw))\r\n" }
        let base = (name.replacingOccurrences(of: "/", with: "__") as NSString).deletingPathExtension
        let path = configuration.quarantineFolder + "/" + base + "." + sha.prefix(8) + ".quarantine.csv"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        logger.warning("\(name): \(rows.count) rows quarantined, see \(path)")
    }
}

