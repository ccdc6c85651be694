import Foundation
import SextantSQLite

/// The ingestion ledger (ROOT/ingest/ledger.sqlite): one row per source file
/// version (source, name, SHA-256, collection), how many of its data rows are
/// final (acknowledged by the engine or quarantined), and its outcome. Batch
/// progress and the batch's quarantined rows commit in one transaction after
/// the engine acknowledges the batch, so a resumed run starts exactly after
/// the last acknowledged batch and never quarantines a row twice.
public final class Ledger: Sendable {
    public let database: Database

    public struct FileEntry: Sendable, Equatable {
        public var id: Int64
        public var status: String
        public var rowsDone: Int
        public var rowsIngested: Int
        public var rowsQuarantined: Int
        public var enrichmentFailures: Int
    }

    public init(path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        database = try Database(path: path)
        try database.execute("""
            CREATE TABLE IF NOT EXISTS files(
              id INTEGER PRIMARY KEY,
              source TEXT NOT NULL, name TEXT NOT NULL, size_bytes INTEGER NOT NULL, sha256 TEXT NOT NULL,
              etag TEXT NOT NULL DEFAULT '', collection TEXT NOT NULL,
              status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
              rows_done INTEGER NOT NULL DEFAULT 0, rows_ingested INTEGER NOT NULL DEFAULT 0,
              rows_quarantined INTEGER NOT NULL DEFAULT 0, enrichment_failures INTEGER NOT NULL DEFAULT 0,
              started_at REAL NOT NULL, finished_at REAL, error TEXT,
              UNIQUE(source, name, sha256, collection));
            CREATE INDEX IF NOT EXISTS files_by_etag ON files(source, name, etag, collection);
            CREATE TABLE IF NOT EXISTS quarantine(
              file_id INTEGER NOT NULL REFERENCES files(id), line INTEGER NOT NULL, reason TEXT NOT NULL, raw TEXT NOT NULL,
              PRIMARY KEY(file_id, line));
            CREATE TABLE IF NOT EXISTS runs(
              id INTEGER PRIMARY KEY, started_at REAL NOT NULL, finished_at REAL, files INTEGER, rows_ingested INTEGER,
              rows_quarantined INTEGER, enrichment_failures INTEGER, seconds REAL);
            """)
        // Bytes of the file read through the last committed batch: what the page's
        // progress (percent, rate, time left) is computed from. Older ledgers lack it.
        // Checked and added in one write transaction: the worker and the search
        // API open the same ledger, and two openers that both saw the column
        // missing failed the second ALTER ("duplicate column name").
        try database.transaction { transaction in
            let columns = try transaction.query("PRAGMA table_info(files)").compactMap { $0.count > 1 ? $0[1].text : nil }
            if !columns.contains("bytes_done") {
                _ = try transaction.query("ALTER TABLE files ADD COLUMN bytes_done INTEGER NOT NULL DEFAULT 0")
            }
            if !columns.contains("updated_at") { _ = try transaction.query("ALTER TABLE files ADD COLUMN updated_at REAL") }
        }
    }

    /// The entry for this exact file version, if one exists.
    public func entry(source: String, name: String, sha256: String, collection: String) throws -> FileEntry? {
        try database.query("""
            SELECT id, status, rows_done, rows_ingested, rows_quarantined, enrichment_failures FROM files
            WHERE source = ? AND name = ? AND sha256 = ? AND collection = ?
            """, [.text(source), .text(name), .text(sha256), .text(collection)]).first.map(Self.entry)
    }

    /// Whether a remote object (by ETag and size) is already done, so it need not be downloaded again.
    public func isDone(source: String, name: String, etag: String, sizeBytes: Int, collection: String) throws -> Bool {
        guard !etag.isEmpty else { return false }
        return try !database.query("""
            SELECT 1 FROM files WHERE source = ? AND name = ? AND etag = ? AND size_bytes = ? AND collection = ? AND status = 'done'
            """, [.text(source), .text(name), .text(etag), .integer(Int64(sizeBytes)), .text(collection)]).isEmpty
    }

    public func begin(source: String, name: String, sizeBytes: Int, sha256: String, etag: String, collection: String) throws -> FileEntry {
        try database.transaction { transaction in
            try transaction.query("""
                INSERT INTO files(source, name, size_bytes, sha256, etag, collection, status, started_at)
                VALUES (?, ?, ?, ?, ?, ?, 'running', ?)
                ON CONFLICT(source, name, sha256, collection) DO UPDATE SET
                  status = CASE WHEN status = 'failed' THEN 'running' ELSE status END, etag = excluded.etag, error = NULL
                """, [.text(source), .text(name), .integer(Int64(sizeBytes)), .text(sha256), .text(etag), .text(collection),
                      .real(Date().timeIntervalSince1970)])
            let rows = try transaction.query("""
                SELECT id, status, rows_done, rows_ingested, rows_quarantined, enrichment_failures FROM files
                WHERE source = ? AND name = ? AND sha256 = ? AND collection = ?
                """, [.text(source), .text(name), .text(sha256), .text(collection)])
            guard let row = rows.first else { throw IngestError.source("ledger lost the entry for \(name)") }
            return Self.entry(row)
        }
    }

    public struct Quarantined: Sendable {
        public var line: Int
        public var reason: String
        public var raw: String
    }

    /// Records a batch as final: called only after the engine acknowledged its records.
    public func commitBatch(fileID: Int64, rowsDone: Int, bytesDone: Int, ingested: Int, quarantined: [Quarantined],
                            enrichmentFailures: Int) throws {
        try database.transaction { transaction in
            for entry in quarantined {
                try transaction.query("INSERT OR REPLACE INTO quarantine(file_id, line, reason, raw) VALUES (?, ?, ?, ?)",
                                      [.integer(fileID), .integer(Int64(entry.line)), .text(entry.reason), .text(entry.raw)])
            }
            try transaction.query("""
                UPDATE files SET rows_done = ?, bytes_done = ?, updated_at = ?, rows_ingested = rows_ingested + ?,
                  rows_quarantined = rows_quarantined + ?, enrichment_failures = enrichment_failures + ? WHERE id = ?
                """, [.integer(Int64(rowsDone)), .integer(Int64(bytesDone)), .real(Date().timeIntervalSince1970), .integer(Int64(ingested)),
                      .integer(Int64(quarantined.count)), .integer(Int64(enrichmentFailures)), .integer(fileID)])
        }
    }

    public func finish(fileID: Int64, error: String?) throws {
        try database.query("UPDATE files SET status = ?, finished_at = ?, error = ? WHERE id = ?", [
            .text(error == nil ? "done" : "failed"), .real(Date().timeIntervalSince1970), error.map { .text($0) } ?? .null,
            .integer(fileID),
        ])
    }

    public func quarantine(fileID: Int64) throws -> [Quarantined] {
        try database.query("SELECT line, reason, raw FROM quarantine WHERE file_id = ? ORDER BY line", [.integer(fileID)]).map { row in
            Quarantined(line: Int(row[0].integer ?? 0), reason: row[1].text ?? "", raw: row[2].text ?? "")
        }
    }

    public func recordRun(started: Double, summary: IngestSummary) throws {
        try database.query("""
            INSERT INTO runs(started_at, finished_at, files, rows_ingested, rows_quarantined, enrichment_failures, seconds)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            """, [.real(started), .real(Date().timeIntervalSince1970), .integer(Int64(summary.files)), .integer(Int64(summary.rowsIngested)),
                  .integer(Int64(summary.rowsQuarantined)), .integer(Int64(summary.enrichmentFailures)), .real(summary.seconds)])
    }

    private static func entry(_ row: Row) -> FileEntry {
        FileEntry(id: row[0].integer ?? 0, status: row[1].text ?? "", rowsDone: Int(row[2].integer ?? 0),
                  rowsIngested: Int(row[3].integer ?? 0), rowsQuarantined: Int(row[4].integer ?? 0),
                  enrichmentFailures: Int(row[5].integer ?? 0))
    }
}

/// What one run did, printed at its end and kept in the ledger's `runs` table.
public struct IngestSummary: Sendable, Codable, Equatable {
    public var files = 0
    public var filesSkipped = 0
    public var filesFailed = 0
    public var rowsIngested = 0
    public var rowsQuarantined = 0
    public var enrichmentFailures = 0
    public var seconds = 0.0
    /// The collection's update event published after a run that wrote rows (see `UpdateEvent`).
    public var updateSequence: Int64?
    public var rowsPerSecond: Double { seconds > 0 ? Double(rowsIngested) / seconds : 0 }
    public init() {}

    public var line: String {
        String(format: "files %d (skipped %d, failed %d), rows ingested %d, quarantined %d, enrichment failures %d, %.1f s, %.0f rows/s",
               files, filesSkipped, filesFailed, rowsIngested, rowsQuarantined, enrichmentFailures, seconds, rowsPerSecond)
    }
}
