import Foundation
import SextantSQLite
import SextantTestSupport
import Testing

/// The SQLite wrapper every service's state goes through, on real database files.
@Suite struct DatabaseTests {
    @Test func everyValueTypeRoundTripsThroughAStatement() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        do {
            let database = try Database(path: directory.path + "/values.sqlite")
            try database.execute("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n TEXT)")
            let row: Row = [.integer(-9_007_199_254_740_993), .real(0.1), .text("zwölf ☃"), .blob([0, 255, 7]), .null]
            try database.query("INSERT INTO t VALUES (?, ?, ?, ?, ?)", row)
            #expect(try database.query("SELECT i, r, s, b, n FROM t") == [row])
            #expect(database.lastInsertRowID == 1)
        }
    }

    @Test func filesAreInWALModeWithFullSynchronousWrites() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        do {
            let database = try Database(path: directory.path + "/mode.sqlite")
            #expect(try database.query("PRAGMA journal_mode").first?.first?.text == "wal")
            // synchronous=FULL is 2: every commit is fsynced before it returns.
            #expect(try database.query("PRAGMA synchronous").first?.first?.integer == 2)
        }
    }

    @Test func aFailedTransactionLeavesNothingBehind() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        do {
            let database = try Database(path: directory.path + "/tx.sqlite")
            try database.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
            struct Refused: Error {}
            #expect(throws: Refused.self) {
                try database.transaction { transaction in
                    try transaction.query("INSERT INTO t VALUES ('a')")
                    #expect(transaction.changes == 1)
                    throw Refused()
                }
            }
            #expect(try database.query("SELECT count(*) FROM t").first?.first?.integer == 0)
            let inserted = try database.transaction { transaction -> Int64 in
                try transaction.query("INSERT INTO t VALUES ('b')")
                return transaction.lastInsertRowID
            }
            #expect(inserted == 1)
            #expect(try database.query("SELECT k FROM t") == [[.text("b")]])
        }
    }

    @Test func errorsNameTheStatementAndTheDatabaseSurvivesThem() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        do {
            let database = try Database(path: directory.path + "/errors.sqlite")
            try database.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
            try database.query("INSERT INTO t VALUES (?)", [.text("x")])
            do {
                try database.query("INSERT INTO t VALUES (?)", [.text("x")])
                Issue.record("a duplicate primary key was accepted")
            } catch {
                #expect(error.message.contains("UNIQUE constraint failed"))
            }
            do {
                try database.query("SELEC nonsense")
                Issue.record("a syntax error was accepted")
            } catch {
                #expect(error.message.contains("SELEC nonsense"))
            }
            #expect(try database.query("SELECT count(*) FROM t").first?.first?.integer == 1)
        }
    }

    @Test func onlineBackupIsAConsistentCopyWhileAnotherConnectionWrites() throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        do {
            let path = directory.path + "/live.sqlite"
            let writer = try Database(path: path)
            try writer.execute("CREATE TABLE t (n INTEGER)")
            try writer.transaction { transaction in
                for number in 0..<1_000 { try transaction.query("INSERT INTO t VALUES (?)", [.integer(Int64(number))]) }
            }
            let reader = try Database(path: path)
            try reader.backup(to: directory.path + "/copy.sqlite")
            try writer.query("INSERT INTO t VALUES (1000)")
            let copy = try Database(path: directory.path + "/copy.sqlite")
            #expect(try copy.query("SELECT count(*), sum(n) FROM t") == [[.integer(1_000), .integer(499_500)]])
            #expect(try reader.query("SELECT count(*) FROM t").first?.first?.integer == 1_001)
        }
    }

    @Test func anUnopenableFileIsAnErrorNamingIt() {
        do {
            _ = try Database(path: "/nonexistent-folder/x.sqlite")
            Issue.record("a database in a missing folder opened")
        } catch {
            #expect(error.message.contains("/nonexistent-folder/x.sqlite"))
        }
    }
}
