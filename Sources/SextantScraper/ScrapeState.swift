import Foundation
import SextantSQLite

/// What the scraper remembers between runs (ROOT/scraper/state.sqlite): per
/// page its validators (ETag, Last-Modified), the hash of its extracted text,
/// the ids of its chunks, and how many complete crawls in a row missed it;
/// and a row per run with its summary.
///
/// The engine is written first and this state second, in one transaction per
/// page: after a crash the page looks changed and is redone, and every engine
/// write is idempotent (upsert of the same ids, delete of absent ids).
public final class ScrapeState: Sendable {
    let database: Database

    public struct Page: Sendable, Equatable {
        public var url: String
        public var etag: String?
        public var lastModified: String?
        public var contentHash: String
        public var chunkIDs: [String]
        /// Its same-site links when last read, so a 304 still leads the crawl onwards.
        public var links: [String]
        public var missingCrawls: Int
    }

    static let columns = "url, etag, last_modified, content_hash, chunk_ids, missing_crawls, links"

    public init(path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        database = try Database(path: path)
        try database.execute("""
            CREATE TABLE IF NOT EXISTS pages(
              collection TEXT NOT NULL, url TEXT NOT NULL,
              etag TEXT, last_modified TEXT, content_hash TEXT NOT NULL, chunk_ids TEXT NOT NULL, links TEXT NOT NULL DEFAULT '[]',
              fetched_at REAL NOT NULL, last_seen_run INTEGER NOT NULL, missing_crawls INTEGER NOT NULL DEFAULT 0,
              PRIMARY KEY(collection, url));
            CREATE TABLE IF NOT EXISTS runs(
              id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, collection TEXT NOT NULL, site TEXT NOT NULL,
              started_at REAL NOT NULL, finished_at REAL, complete INTEGER, summary TEXT);
            """)
    }

    public func page(collection: String, url: String) throws -> Page? {
        try database.query("""
            SELECT \(Self.columns) FROM pages WHERE collection = ? AND url = ?
            """, [.text(collection), .text(url)]).first.map(Self.page)
    }

    public func isEmpty(collection: String) throws -> Bool {
        try database.query("SELECT 1 FROM pages WHERE collection = ? LIMIT 1", [.text(collection)]).isEmpty
    }

    public func pages(collection: String) throws -> [Page] {
        try database.query("""
            SELECT \(Self.columns) FROM pages WHERE collection = ? ORDER BY url
            """, [.text(collection)]).map(Self.page)
    }

    static func page(_ row: Row) -> Page {
        func list(_ value: SQLValue) -> [String] {
            (try? JSONDecoder().decode([String].self, from: Data((value.text ?? "[]").utf8))) ?? []
        }
        return Page(url: row[0].text ?? "", etag: row[1].text, lastModified: row[2].text, contentHash: row[3].text ?? "",
                    chunkIDs: list(row[4]), links: list(row[6]), missingCrawls: Int(row[5].integer ?? 0))
    }

    public func save(collection: String, page: Page, run: Int64) throws {
        func json(_ list: [String]) -> String { String(decoding: (try? JSONEncoder().encode(list)) ?? Data("[]".utf8), as: UTF8.self) }
        _ = try database.query("""
            INSERT INTO pages(collection, url, etag, last_modified, content_hash, chunk_ids, links, fetched_at, last_seen_run,
                              missing_crawls)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)
            ON CONFLICT(collection, url) DO UPDATE SET etag = excluded.etag, last_modified = excluded.last_modified,
              content_hash = excluded.content_hash, chunk_ids = excluded.chunk_ids, links = excluded.links,
              fetched_at = excluded.fetched_at, last_seen_run = excluded.last_seen_run, missing_crawls = 0
            """, [.text(collection), .text(page.url), page.etag.map(SQLValue.text) ?? .null,
                  page.lastModified.map(SQLValue.text) ?? .null, .text(page.contentHash), .text(json(page.chunkIDs)),
                  .text(json(page.links)), .real(Date().timeIntervalSince1970), .integer(run)])
    }

    /// Pages seen again with nothing new (304, the same text, or unreadable this time), in one transaction:
    /// a re-scrape of an unchanged site costs one commit, not one per page.
    public func touch(collection: String, urls: [String], run: Int64) throws {
        guard !urls.isEmpty else { return }
        try database.transaction { transaction in
            for url in urls {
                _ = try transaction.query("UPDATE pages SET last_seen_run = ?, missing_crawls = 0 WHERE collection = ? AND url = ?",
                                          [.integer(run), .text(collection), .text(url)])
            }
        }
    }

    public func remove(collection: String, url: String) throws {
        _ = try database.query("DELETE FROM pages WHERE collection = ? AND url = ?", [.text(collection), .text(url)])
    }

    /// After a complete crawl: every page it did not reach has one more miss; returns the pages now missed twice.
    public func countMisses(collection: String, run: Int64, threshold: Int) throws -> [Page] {
        _ = try database.query("UPDATE pages SET missing_crawls = missing_crawls + 1 WHERE collection = ? AND last_seen_run <> ?",
                               [.text(collection), .integer(run)])
        return try database.query("""
            SELECT \(Self.columns) FROM pages
            WHERE collection = ? AND missing_crawls >= ?
            """, [.text(collection), .integer(Int64(threshold))]).map(Self.page)
    }

    public func beginRun(runID: String, collection: String, site: String) throws -> Int64 {
        let rows = try database.query("""
            INSERT INTO runs(run_id, collection, site, started_at) VALUES (?, ?, ?, ?) RETURNING id
            """, [.text(runID), .text(collection), .text(site), .real(Date().timeIntervalSince1970)])
        return rows.first?.first?.integer ?? 0
    }

    public func finishRun(_ run: Int64, complete: Bool, summary: ScrapeSummary) throws {
        let text = String(decoding: (try? JSONEncoder().encode(summary)) ?? Data("{}".utf8), as: UTF8.self)
        _ = try database.query("UPDATE runs SET finished_at = ?, complete = ?, summary = ? WHERE id = ?",
                               [.real(Date().timeIntervalSince1970), .integer(complete ? 1 : 0), .text(text), .integer(run)])
    }
}
