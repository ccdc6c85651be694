import Foundation
import SextantBackup
import SextantClient
import SextantObjectStore
import SextantPayload
import SextantSQLite
import SextantTestSupport
import Testing

/// Backup and restore as users run them: `sextant backup` / `restore` /
/// `backups` against a real engine process, real SQLite files, a folder target
/// and a real S3 server (moto).
@Suite(.serialized) struct BackupTests {
    func records(_ range: Range<Int>, prefix: String = "r") -> (ids: [String], vectors: [[Float]], documents: [String?]) {
        let vectors = randomVectors(count: range.count, dimensions: 16, seed: UInt64(range.lowerBound + 1))
        return (range.map { "\(prefix)\($0)" }, vectors, range.map { "document \($0)" })
    }

    func run(_ arguments: [String], environment: [String: String] = [:]) throws -> (Int32, String, String) {
        try SextantBinary.run(arguments, environment: environment)
    }

    func report<T: Decodable>(_ output: String, as type: T.Type) -> T? {
        output.split(separator: "\n").last.flatMap { try? JSONDecoder().decode(T.self, from: Data($0.utf8)) }
    }

    struct Report: Decodable {
        var id: String
        var totalBytes: Int
        var uploadedBytes: Int
        var records: Int
        var deletedBackups: [String]
    }

    @Test func folderTargetRoundTripIncrementalCorruptionAndRetention() async throws {
        let directory = TemporaryDirectory("sextant-backup")
        defer { directory.remove() }
        let root = directory.file("root")
        let target = "file://" + directory.file("target")
        let engine = try EngineProcess(dataRoot: root)
        let client = try await SextantClient.connect(to: engine.address)
        let collection = try await client.createCollection(name: "kb", dimension: 16, textIndex: TextIndexOptions())
        for start in stride(from: 0, to: 20_000, by: 10_000) {
            let part = records(start..<start + 10_000)
            try await collection.upsert(ids: part.ids, vectors: part.vectors, documents: part.documents)
        }
        // Checkpointed, so the backup holds a generation with its text index file (the later records ride in the WAL).
        _ = try await client.checkpoint()
        try FileManager.default.createDirectory(atPath: root + "/api", withIntermediateDirectories: true)
        let feedback = try Database(path: root + "/api/feedback.sqlite")
        try feedback.execute("CREATE TABLE feedback(id INTEGER PRIMARY KEY, rating INTEGER); INSERT INTO feedback(rating) VALUES (1), (-1);")

        let (status, out, err) = try run(["backup", "--data", root, "--engine", engine.address, "--to", target, "--json"])
        #expect(status == 0, "\(err)")
        let full = report(out, as: Report.self)
        #expect(full?.records == 20_000)
        #expect(full?.uploadedBytes == full?.totalBytes)

        // Incremental: 100 more records upload only what changed.
        let more = records(20_000..<20_100)
        try await collection.upsert(ids: more.ids, vectors: more.vectors, documents: more.documents)
        let second = report(try run(["backup", "--data", root, "--engine", engine.address, "--to", target, "--json"]).1, as: Report.self)
        #expect(second?.records == 20_100)
        #expect((second?.uploadedBytes ?? .max) < (second?.totalBytes ?? 0) / 2)
        let listing = try run(["backups", "--from", target]).1
        #expect(listing.contains(full?.id ?? "?") && listing.contains(second?.id ?? "?"))
        await client.close()
        #expect(engine.stop() == 0)

        // Wipe and restore the newest: same records, same SQLite rows.
        let restoredRoot = directory.file("restored")
        let restored = try run(["restore", "--from", target, "--data", restoredRoot])
        #expect(restored.0 == 0, "\(restored.2)")
        let again = try EngineProcess(dataRoot: restoredRoot)
        let client2 = try await SextantClient.connect(to: again.address)
        let kb = try await client2.getCollection(name: "kb")
        #expect(try await kb.count() == 20_100)
        let sample = try await kb.get(ids: ["r0", "r20099"], include: [.documents])
        #expect(Set(sample.compactMap(\.document)) == ["document 0", "document 20099"])
        // The text index came back with its generation (restored, not rebuilt) and answers.
        let files = FileManager.default.enumerator(atPath: restoredRoot)?.compactMap { $0 as? String } ?? []
        #expect(files.contains { $0.hasSuffix("/text.bm25") }, "the backup carries the text index file")
        let words = try await kb.search(mode: .lexical, texts: ["20099", "document 7"], k: 3)
        #expect(words[0].first?.id == "r20099" && words[1].first?.id == "r7", "\(words)")
        let rows = try Database(path: restoredRoot + "/api/feedback.sqlite").query("SELECT rating FROM feedback ORDER BY id")
        #expect(rows.map { $0[0].integer } == [1, -1])
        await client2.close()
        again.stop()

        // Restoring over existing data is refused without --replace.
        let refused = try run(["restore", "--from", target, "--data", restoredRoot])
        #expect(refused.0 != 0 && refused.2.contains("already holds engine data"))

        // A corrupt blob: refused with a clear error, nothing restored.
        // One piece the newest backup needs.
        let newest = try JSONDecoder().decode([BackupManifest].self, from: Data(try run(["backups", "--from", target, "--json"]).1.utf8))
        let piece = newest.first?.files.first { $0.path.hasSuffix(".wal") }?.chunks.first ?? ""
        let victim = directory.file("target/blobs/\(piece.prefix(2))/\(piece)")
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: victim)))
        bytes[bytes.count / 2] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: victim))
        let corrupt = try run(["restore", "--from", target, "--data", directory.file("third")])
        #expect(corrupt.0 != 0)
        #expect(corrupt.2.contains("is corrupt"))
        #expect(!FileManager.default.fileExists(atPath: directory.file("third/engine/collections")))

        // Retention keeps the newest backup and drops blobs only older ones used.
        try Data(bytes.map { $0 }).write(to: URL(fileURLWithPath: victim))  // leave it corrupt; retention must not care
        let engine3 = try EngineProcess(dataRoot: root)
        let kept = report(try run(["backup", "--data", root, "--engine", engine3.address, "--to", target, "--keep", "1", "--json"]).1,
                          as: Report.self)
        #expect(kept?.deletedBackups.count == 2)
        #expect(try run(["backups", "--from", target, "--json"]).1.components(separatedBy: "\"format\"").count == 2)
        engine3.stop()
    }

    @Test func s3BackupDuringWritesRestoresAnAcknowledgedPrefix() async throws {
        let directory = TemporaryDirectory("sextant-backup")
        defer { directory.remove() }
        let moto = try MotoServer(logPath: directory.file("moto.log"))
        defer { moto.stop() }
        let environment = moto.environment
        try await S3Store(bucket: "backups", prefix: "", settings: S3Settings(environment: environment)).createBucket()
        let root = directory.file("root")
        let engine = try EngineProcess(dataRoot: root)
        let client = try await SextantClient.connect(to: engine.address)
        let collection = try await client.createCollection(name: "feed", dimension: 16)
        // A writer appends r0, r1, ... in order, batch after acknowledged batch.
        let writer = Task {
            var next = 0
            while !Task.isCancelled && next < 200_000 {
                let batch = records(next..<next + 500)
                try await collection.upsert(ids: batch.ids, vectors: batch.vectors, documents: batch.documents)
                next += 500
            }
            return next
        }
        try await Task.sleep(for: .milliseconds(300))
        let backup = try run(["backup", "--data", root, "--engine", engine.address, "--to", "s3://backups/site-a", "--json"],
                             environment: environment)
        try await Task.sleep(for: .milliseconds(200))
        writer.cancel()
        let written = try await writer.value
        #expect(backup.0 == 0, "\(backup.2)")
        let taken = report(backup.1, as: Report.self)
        let inBackup = taken?.records ?? 0
        #expect(inBackup > 0 && inBackup < written, "backup \(inBackup) of \(written) written")
        await client.close()
        engine.stop()

        let restoredRoot = directory.file("restored")
        let restored = try run(["restore", "--from", "s3://backups/site-a", "--data", restoredRoot], environment: environment)
        #expect(restored.0 == 0, "\(restored.2)")
        let again = try EngineProcess(dataRoot: restoredRoot)
        let client2 = try await SextantClient.connect(to: again.address)
        let feed = try await client2.getCollection(name: "feed")
        #expect(try await feed.count() == inBackup)
        // Exactly the first `inBackup` records: a state that really existed.
        let present = try await feed.get(ids: ["r0", "r\(inBackup - 1)", "r\(inBackup)"], include: [])
        #expect(Set(present.map(\.id)) == ["r0", "r\(inBackup - 1)"])
        await client2.close()
        again.stop()
    }

    @Test func interruptedBackupLeavesThePreviousOneRestorable() async throws {
        let directory = TemporaryDirectory("sextant-backup")
        defer { directory.remove() }
        let root = directory.file("root")
        let target = "file://" + directory.file("target")
        let engine = try EngineProcess(dataRoot: root)
        defer { engine.stop() }
        let client = try await SextantClient.connect(to: engine.address)
        let collection = try await client.createCollection(name: "big", dimension: 256)
        for start in stride(from: 0, to: 30_000, by: 5_000) {
            let vectors = randomVectors(count: 5_000, dimensions: 256, seed: UInt64(start + 7))
            try await collection.upsert(ids: (start..<start + 5_000).map { "b\($0)" }, vectors: vectors,
                                        documents: (start..<start + 5_000).map { String(repeating: "text \($0) ", count: 20) })
        }
        let first = try run(["backup", "--data", root, "--engine", engine.address, "--to", target])
        #expect(first.0 == 0, "\(first.2)")
        _ = try await client.checkpoint()  // new generation files: the next backup has much to upload
        let extra = randomVectors(count: 1_000, dimensions: 256, seed: 99)
        try await collection.upsert(ids: (0..<1_000).map { "x\($0)" }, vectors: extra)
        let process = try SextantBinary.start(["backup", "--data", root, "--engine", engine.address, "--to", target],
                                              logPath: directory.file("backup2.log"))
        // Kill it once blobs of the second backup start to land.
        let blobs = directory.file("target/blobs")
        let before = (FileManager.default.subpaths(atPath: blobs) ?? []).count
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline && process.isRunning && (FileManager.default.subpaths(atPath: blobs) ?? []).count == before {
            usleep(1_000)
        }
        let interrupted = process.isRunning
        process.killHard()
        #expect(interrupted, "the second backup finished before it could be interrupted")
        let listing = try run(["backups", "--from", target, "--json"]).1
        #expect(listing.components(separatedBy: "\"format\"").count == 2)  // only the first, complete backup
        let restored = try run(["restore", "--from", target, "--data", directory.file("restored")])
        #expect(restored.0 == 0, "\(restored.2)")
        let again = try EngineProcess(dataRoot: directory.file("restored"))
        let client2 = try await SextantClient.connect(to: again.address)
        #expect(try await client2.getCollection(name: "big").count() == 30_000)
        await client2.close()
        again.stop()
        await client.close()
    }

    @Test func upRestoresOnStartAndBacksUpOnSigterm() async throws {
        let directory = TemporaryDirectory("sextant-backup")
        defer { directory.remove() }
        let target = "file://" + directory.file("target")
        let first = try UpProcess(dataRoot: directory.file("root1"), extraArguments: ["--backup-to", target, "--no-ingest"])
        try first.waitFor("no backup in")
        let client = try await SextantClient.connect(to: first.engineAddress)
        let notes = try await client.createCollection(name: "notes", dimension: 16)
        let batch = records(0..<300)
        try await notes.upsert(ids: batch.ids, vectors: batch.vectors, documents: batch.documents)
        await client.close()
        #expect(first.stop() == 0)
        #expect(first.log.contains("shutdown backup"))
        #expect(first.log.contains("done in"))

        // A new, empty data root (a fresh container) comes back with the data.
        let second = try UpProcess(dataRoot: directory.file("root2"), extraArguments: ["--backup-to", target, "--no-ingest"])
        #expect(second.log.contains("restored backup"))
        let client2 = try await SextantClient.connect(to: second.engineAddress)
        #expect(try await client2.getCollection(name: "notes").count() == 300)
        #expect(try await client2.getCollection(name: "demo").count() > 3_000)
        await client2.close()
        #expect(second.stop() == 0)
    }

    /// The engine alone, as a container would run it: `sextant engine --backup-to`.
    @Test func engineRestoresOnStartAndBacksUpOnSigterm() async throws {
        let directory = TemporaryDirectory("sextant-backup")
        defer { directory.remove() }
        let target = "file://" + directory.file("target")
        let first = try EngineProcess(dataRoot: directory.file("root1"), extraArguments: ["--backup-to", target, "--backup-every", "1h"])
        let client = try await SextantClient.connect(to: first.address)
        let notes = try await client.createCollection(name: "notes", dimension: 16)
        let batch = records(0..<500)
        try await notes.upsert(ids: batch.ids, vectors: batch.vectors, documents: batch.documents)
        await client.close()
        #expect(first.stop() == 0)
        #expect(first.log.contains("no backup in"))
        #expect(first.log.contains("shutdown backup") && first.log.contains("done in"), "\(first.log.suffix(2_000))")

        // A fresh data root comes back with every acknowledged record.
        let second = try EngineProcess(dataRoot: directory.file("root2"), extraArguments: ["--backup-to", target])
        #expect(second.log.contains("restored backup"))
        let client2 = try await SextantClient.connect(to: second.address)
        let restored = try await client2.getCollection(name: "notes")
        #expect(try await restored.count() == 500)
        #expect(try await restored.get(ids: ["r0", "r499"]).count == 2)
        await client2.close()
        #expect(second.stop() == 0)
        let (status, out, _) = try run(["backups", "--from", target])
        #expect(status == 0 && out.split(separator: "\n").count >= 2, "\(out)")
    }
}

@Suite struct DeploymentFilesTests {
    @Test func composeAndCloudRunFilesAreValidAndUseRealFlags() throws {
        let (status, output) = try TestPython.run("tools/python/check_deploy_files.py", [TestDataset.packageRoot, SextantBinary.path])
        #expect(status == 0, "\(output)")
        #expect(output.contains("deploy files: ok"))
    }

    @Test func kubernetesManifestsRenderValidateAndUseRealFlags() throws {
        let (status, output) = try TestPython.run("tools/python/check_kubernetes.py", [TestDataset.packageRoot, SextantBinary.path])
        #expect(status == 0, "\(output)")
        #expect(output.contains("kubernetes manifests: ok"))
    }
}
