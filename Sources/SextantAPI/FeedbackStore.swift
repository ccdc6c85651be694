import Foundation
import SextantSQLite

/// Ratings of search results, kept in SQLite (WAL mode, synchronous=FULL): a
/// feedback request is answered 201 only after its row is committed, so it
/// survives kill -9 of the API and power loss.
public final class FeedbackStore: Sendable {
    let database: Database

    public struct Entry: Sendable, Equatable {
        public var id: Int64
        public var createdAt: Double
        public var collection: String
        public var query: String
        public var resultID: String
        public var rating: Int
        public var comment: String?
        public var user: String?
    }

    public init(path: String) throws {
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        database = try Database(path: path)
        try database.execute("""
            CREATE TABLE IF NOT EXISTS feedback (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                created_at REAL NOT NULL,
                collection TEXT NOT NULL,
                query TEXT NOT NULL,
                result_id TEXT NOT NULL,
                rating INTEGER NOT NULL,
                comment TEXT,
                user TEXT
            );
            CREATE INDEX IF NOT EXISTS feedback_created ON feedback(created_at);
            """)
    }

    /// Stores one entry durably; returns its id.
    public func add(collection: String, query: String, resultID: String, rating: Int, comment: String?, user: String?) throws
        -> Int64
    {
        try database.transaction { transaction in
            try transaction.query(
                "INSERT INTO feedback (created_at, collection, query, result_id, rating, comment, user) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [.real(Date().timeIntervalSince1970), .text(collection), .text(query), .text(resultID), .integer(Int64(rating)),
                 comment.map { .text($0) } ?? .null, user.map { .text($0) } ?? .null])
            return transaction.lastInsertRowID
        }
    }

    public func entries(afterID: Int64 = 0, limit: Int) throws -> [Entry] {
        try database.query(
            "SELECT id, created_at, collection, query, result_id, rating, comment, user FROM feedback WHERE id > ? ORDER BY id LIMIT ?",
            [.integer(afterID), .integer(Int64(limit))]
        ).map { row in
            Entry(id: row[0].integer ?? 0, createdAt: row[1].real ?? 0, collection: row[2].text ?? "", query: row[3].text ?? "",
                  resultID: row[4].text ?? "", rating: Int(row[5].integer ?? 0), comment: row[6].text, user: row[7].text)
        }
    }
}
