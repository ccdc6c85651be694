import CSQLite
import Synchronization

public struct SQLiteError: Error, Sendable, CustomStringConvertible, Equatable {
    public let code: Int32
    public let message: String
    public var description: String { "SQLite error \(code): \(message)" }
}

/// A value bound to or read from a statement.
public enum SQLValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])

    public var text: String? { if case .text(let value) = self { return value } else { return nil } }
    public var integer: Int64? { if case .integer(let value) = self { return value } else { return nil } }
    public var real: Double? {
        switch self {
        case .real(let value): return value
        case .integer(let value): return Double(value)
        default: return nil
        }
    }
    public var blob: [UInt8]? { if case .blob(let value) = self { return value } else { return nil } }
}

public typealias Row = [SQLValue]

/// One SQLite database file, opened in WAL mode with synchronous=FULL: a
/// committed transaction survives kill -9 and power loss. All access is
/// serialised through one connection (SQLite's own locking protects other
/// processes); statements are small and fast, so a mutex is enough.
public final class Database: Sendable {
    public let path: String
    private let handle: Mutex<OpaquePointer?>

    /// `readOnly` opens another program's database (Chroma's, for an import)
    /// without creating it, changing its journal mode or writing to it.
    public init(path: String, readOnly: Bool = false) throws(SQLiteError) {
        self.path = path
        var db: OpaquePointer? = nil
        let flags = readOnly ? SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close(db)
            throw SQLiteError(code: rc, message: "\(path): \(message)")
        }
        sqlite3_busy_timeout(db, 5_000)
        handle = Mutex(db)
        if readOnly { return }
        try execute("PRAGMA journal_mode=WAL")
        try execute("PRAGMA synchronous=FULL")
        try execute("PRAGMA foreign_keys=ON")
    }

    deinit {
        handle.withLock { db in
            sqlite3_close_v2(db)
            db = nil
        }
    }

    private func check(_ rc: Int32, _ db: OpaquePointer?, _ what: String) throws(SQLiteError) {
        guard rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW else {
            throw SQLiteError(code: rc, message: "\(what): \(db.map { String(cString: sqlite3_errmsg($0)) } ?? "")")
        }
    }

    /// Runs SQL with no results (may hold several statements).
    public func execute(_ sql: String) throws(SQLiteError) {
        try handle.withLock { (db) throws(SQLiteError) in
            var error: UnsafeMutablePointer<CChar>? = nil
            let rc = sqlite3_exec(db, sql, nil, nil, &error)
            if rc != SQLITE_OK {
                let message = error.map { String(cString: $0) } ?? ""
                sqlite3_free(error)
                throw SQLiteError(code: rc, message: message)
            }
        }
    }

    /// Runs one statement with parameters; returns every row.
    @discardableResult
    public func query(_ sql: String, _ parameters: [SQLValue] = []) throws(SQLiteError) -> [Row] {
        try handle.withLock { (db) throws(SQLiteError) -> [Row] in try Self.run(db, sql, parameters) }
    }

    /// Runs `body` in one transaction (BEGIN IMMEDIATE … COMMIT, or ROLLBACK on error).
    public func transaction<T>(_ body: (Transaction) throws -> T) throws -> T {
        try handle.withLock { db -> T in
            _ = try Self.run(db, "BEGIN IMMEDIATE", [])
            do {
                let result = try body(Transaction(db: db))
                _ = try Self.run(db, "COMMIT", [])
                return result
            } catch {
                _ = try? Self.run(db, "ROLLBACK", [])
                throw error
            }
        }
    }

    public struct Transaction {
        fileprivate let db: OpaquePointer?
        @discardableResult
        public func query(_ sql: String, _ parameters: [SQLValue] = []) throws -> [Row] { try Database.run(db, sql, parameters) }
        public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(db) }
        public var changes: Int { Int(sqlite3_changes(db)) }
    }

    public var lastInsertRowID: Int64 { handle.withLock { sqlite3_last_insert_rowid($0) } }

    fileprivate static func run(_ db: OpaquePointer?, _ sql: String, _ parameters: [SQLValue]) throws(SQLiteError) -> [Row] {
        var statement: OpaquePointer? = nil
        var rc = sqlite3_prepare_v2(db, sql, -1, &statement, nil)
        guard rc == SQLITE_OK, let statement else {
            throw SQLiteError(code: rc, message: "\(String(cString: sqlite3_errmsg(db))) in: \(sql.prefix(200))")
        }
        defer { sqlite3_finalize(statement) }
        for (offset, value) in parameters.enumerated() {
            let index = Int32(offset + 1)
            switch value {
            case .null: rc = sqlite3_bind_null(statement, index)
            case .integer(let number): rc = sqlite3_bind_int64(statement, index, number)
            case .real(let number): rc = sqlite3_bind_double(statement, index, number)
            case .text(let text): rc = sqlite3_bind_text(statement, index, text, -1, sextant_sqlite_transient())
            case .blob(let bytes):
                rc = bytes.withUnsafeBytes { sqlite3_bind_blob(statement, index, $0.baseAddress, Int32($0.count), sextant_sqlite_transient()) }
            }
            guard rc == SQLITE_OK else { throw SQLiteError(code: rc, message: "bind \(index): \(String(cString: sqlite3_errmsg(db)))") }
        }
        var rows: [Row] = []
        while true {
            rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else {
                throw SQLiteError(code: rc, message: "\(String(cString: sqlite3_errmsg(db))) in: \(sql.prefix(200))")
            }
            let columns = sqlite3_column_count(statement)
            var row: Row = []
            row.reserveCapacity(Int(columns))
            for column in 0..<columns {
                switch sqlite3_column_type(statement, column) {
                case SQLITE_INTEGER: row.append(.integer(sqlite3_column_int64(statement, column)))
                case SQLITE_FLOAT: row.append(.real(sqlite3_column_double(statement, column)))
                case SQLITE_TEXT:
                    row.append(.text(sqlite3_column_text(statement, column).map { String(cString: $0) } ?? ""))
                case SQLITE_BLOB:
                    let count = Int(sqlite3_column_bytes(statement, column))
                    if let bytes = sqlite3_column_blob(statement, column), count > 0 {
                        row.append(.blob(Array(UnsafeRawBufferPointer(start: bytes, count: count))))
                    } else {
                        row.append(.blob([]))
                    }
                default: row.append(.null)
                }
            }
            rows.append(row)
        }
        return rows
    }

    /// Copies the whole database into `destination` with SQLite's online backup
    /// API: a consistent snapshot even while other connections write (never a
    /// raw copy of a live file).
    public func backup(to destination: String) throws(SQLiteError) {
        try handle.withLock { (db) throws(SQLiteError) in
            var target: OpaquePointer? = nil
            var rc = sqlite3_open_v2(destination, &target, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nil)
            guard rc == SQLITE_OK else {
                sqlite3_close(target)
                throw SQLiteError(code: rc, message: "\(destination): cannot open for backup")
            }
            defer { sqlite3_close(target) }
            guard let backup = sqlite3_backup_init(target, "main", db, "main") else {
                throw SQLiteError(code: sqlite3_errcode(target), message: String(cString: sqlite3_errmsg(target)))
            }
            repeat { rc = sqlite3_backup_step(backup, -1) } while rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED
            let finish = sqlite3_backup_finish(backup)
            guard rc == SQLITE_DONE, finish == SQLITE_OK else {
                throw SQLiteError(code: rc, message: "backup to \(destination) failed: \(String(cString: sqlite3_errmsg(target)))")
            }
        }
    }
}
