import Foundation
import Logging
import SextantClient
import SextantObjectStore
import SextantSQLite
import SextantSupport

/// One backup: written last, so a backup that was interrupted never has one
/// and is never listed. Keys in the store:
///   backups/ID.json          this manifest
///   blobs/AB/SHA256          file contents, content-addressed (shared by backups)
public struct BackupManifest: Codable, Sendable, Equatable {
    public struct File: Codable, Sendable, Equatable {
        /// Relative to the data root: engine/collections/ID/..., api/feedback.sqlite, ...
        public var path: String
        public var sizeBytes: Int
        /// Of the whole file, checked after reassembly.
        public var sha256: String
        /// SHA-256 of each `chunkBytes` piece, in order: a WAL that grew, or a
        /// vectors file rewritten with the same prefix, re-uploads only its
        /// changed pieces.
        public var chunks: [String]
    }
    public struct Collection: Codable, Sendable, Equatable {
        public var id: String
        /// The WAL position the snapshot holds: every write acknowledged up to it.
        public var lsn: UInt64
        public var records: Int
    }

    public static let currentFormat = 1
    public var format: Int
    public var id: String
    public var createdAtSeconds: Double
    public var files: [File]
    public var collections: [Collection]
    public var sqliteFiles: [String]
    public var chunkBytes: Int
    public var totalBytes: Int { files.reduce(0) { $0 + $1.sizeBytes } }
    public var records: Int { collections.reduce(0) { $0 + $1.records } }

    static func key(_ id: String) -> String { "backups/" + id + ".json" }
    static func blobKey(_ sha256: String) -> String { "blobs/" + sha256.prefix(2) + "/" + sha256 }
}

public struct BackupError: Error, Sendable, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public struct BackupReport: Sendable, Codable {
    public var id: String
    public var files: Int
    public var totalBytes: Int
    public var uploadedBytes: Int
    public var uploadedFiles: Int
    public var records: Int
    public var seconds: Double
    public var deletedBackups: [String]
    public var deletedBlobs: Int
}

public struct RestoreReport: Sendable, Codable {
    public var id: String
    public var files: Int
    public var totalBytes: Int
    public var records: Int
    public var seconds: Double
}

/// Backs up and restores the whole state under one data root: the engine's
/// collections (through its online snapshot) and every SQLite file (through
/// SQLite's online backup API), to any `ObjectStore`.
public struct BackupService: Sendable {
    public let store: any ObjectStore
    public let dataRoot: String
    public let logger: Logger
    /// Uploads in flight at once.
    public var concurrency = 4
    /// The content-addressed unit (the last piece of a file may be shorter).
    public var chunkBytes = 1 << 20
    public static let maximumManifestBytes = 64 << 20

    public init(store: any ObjectStore, dataRoot: String, logger: Logger) {
        self.store = store
        self.dataRoot = dataRoot.hasPrefix("/") ? dataRoot : FileManager.default.currentDirectoryPath + "/" + dataRoot
        self.logger = logger
    }

    var engineDirectory: String { dataRoot + "/engine" }
    /// Scratch space for the engine's snapshot: inside the engine's own folder,
    /// because the snapshot hard-links its files (same file system, also when
    /// the engine runs in another container that shares only that volume).
    var workDirectory: String { engineDirectory + "/.backup" }

    // MARK: - Backup

    /// Takes a backup. `client` is the running engine (its online snapshot);
    /// nil means the engine is stopped and its files are read as they are.
    public func backup(client: SextantClient?, keep: Int? = nil) async throws -> BackupReport {
        let started = Date()
        let clock = ContinuousClock.now
        let id = Self.newID(started)
        let staging = workDirectory + "/staging-" + id
        try? FileManager.default.removeItem(atPath: workDirectory)  // stale staging of an interrupted run
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: workDirectory) }

        var collections: [BackupManifest.Collection] = []
        if let client {
            // Hard links of immutable files, so the snapshot is cheap; the staging
            // folder sits on the engine's file system (under the same root).
            let positions = try await client.snapshot(to: staging + "/engine")
            collections = positions.map { BackupManifest.Collection(id: $0.key, lsn: $0.value.lsn, records: $0.value.records) }
                .sorted { $0.id < $1.id }
        } else if FileManager.default.fileExists(atPath: engineDirectory + "/collections") {
            try Self.linkTree(engineDirectory + "/collections", staging + "/engine/collections")
        }
        var sqliteFiles: [String] = []
        for relative in try sqliteDatabases() {
            let target = staging + "/" + relative
            try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            try Database(path: dataRoot + "/" + relative).backup(to: target)
            sqliteFiles.append(relative)
        }

        var files: [BackupManifest.File] = []
        var pieces: [String: Piece] = [:]
        for relative in Self.regularFiles(under: staging) {
            let path = staging + "/" + relative
            let (whole, chunks) = try Chunks.hash(path: path, chunkBytes: chunkBytes)
            var size = 0
            for (index, chunk) in chunks.enumerated() {
                pieces[chunk.sha256] = Piece(path: path, offset: index * chunkBytes, sizeBytes: chunk.sizeBytes)
                size += chunk.sizeBytes
            }
            files.append(BackupManifest.File(path: relative, sizeBytes: size, sha256: whole, chunks: chunks.map(\.sha256)))
        }
        let existing = Set(try await store.list(prefix: "blobs/").map(\.key))
        let pending = pieces.filter { !existing.contains(BackupManifest.blobKey($0.key)) }.sorted { $0.key < $1.key }
        try await upload(pending)
        let manifest = BackupManifest(format: BackupManifest.currentFormat, id: id, createdAtSeconds: started.timeIntervalSince1970,
                                      files: files, collections: collections, sqliteFiles: sqliteFiles, chunkBytes: chunkBytes)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try await store.write(Array(try encoder.encode(manifest)), to: BackupManifest.key(id))
        var deletedBackups: [String] = []
        var deletedBlobs = 0
        if let keep { (deletedBackups, deletedBlobs) = try await retain(keep, startedAt: started) }
        let report = BackupReport(
            id: id, files: files.count, totalBytes: manifest.totalBytes, uploadedBytes: pending.reduce(0) { $0 + $1.value.sizeBytes },
            uploadedFiles: pending.count, records: manifest.records, seconds: (ContinuousClock.now - clock).seconds,
            deletedBackups: deletedBackups, deletedBlobs: deletedBlobs)
        logger.notice("backup \(id) to \(store.displayName): \(files.count) files, \(report.totalBytes) bytes (\(report.uploadedBytes) uploaded), \(report.records) records, \(String(format: "%.2f", report.seconds)) s")
        return report
    }

    struct Piece: Sendable {
        var path: String
        var offset: Int
        var sizeBytes: Int
    }

    private func upload(_ pieces: [(key: String, value: Piece)]) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            var iterator = pieces.makeIterator()
            func addNext() -> Bool {
                guard let (sha, piece) = iterator.next() else { return false }
                group.addTask {
                    let bytes = try Chunks.read(path: piece.path, offset: piece.offset, count: piece.sizeBytes)
                    try await store.write(bytes, to: BackupManifest.blobKey(sha))
                }
                return true
            }
            for _ in 0..<max(1, concurrency) where !addNext() { break }
            while try await group.next() != nil { _ = addNext() }
        }
    }

    /// Every SQLite database under the root that a service owns (not the engine's, not backup scratch).
    func sqliteDatabases() throws -> [String] {
        Self.regularFiles(under: dataRoot).filter { path in
            path.hasSuffix(".sqlite") && !path.hasPrefix("engine/") && !path.contains("/spool/") && !path.hasPrefix(".restore")
        }
    }

    // MARK: - Listing and retention

    /// Complete backups, newest first.
    public func list() async throws -> [BackupManifest] {
        var manifests: [BackupManifest] = []
        for object in try await store.list(prefix: "backups/") where object.key.hasSuffix(".json") {
            let id = String(object.key.dropFirst("backups/".count).dropLast(".json".count))
            manifests.append(try await manifest(id))
        }
        return manifests.sorted { $0.id > $1.id }
    }

    public func manifest(_ id: String) async throws -> BackupManifest {
        let bytes: [UInt8]
        do { bytes = try await store.read(BackupManifest.key(id), maximumBytes: Self.maximumManifestBytes) } catch let error as ObjectStoreError
            where error.kind == .notFound {
            throw BackupError("no backup '\(id)' in \(store.displayName)")
        }
        do {
            let manifest = try JSONDecoder().decode(BackupManifest.self, from: Data(bytes))
            guard manifest.format <= BackupManifest.currentFormat else {
                throw BackupError("backup \(id) has format \(manifest.format); this sextant reads up to \(BackupManifest.currentFormat)")
            }
            return manifest
        } catch let error as BackupError { throw error } catch {
            throw BackupError("backup \(id): manifest is corrupt (\(error))")
        }
    }

    /// Keeps the newest `keep` backups; deletes older manifests, then blobs no
    /// remaining manifest names (only those older than this run, so a blob
    /// another backup just uploaded is never taken from under it).
    func retain(_ keep: Int, startedAt: Date) async throws -> ([String], Int) {
        let manifests = try await list()
        guard manifests.count > max(1, keep) else { return ([], 0) }
        let doomed = manifests.dropFirst(max(1, keep))
        for manifest in doomed { try await store.delete(BackupManifest.key(manifest.id)) }
        let needed = Set(manifests.prefix(max(1, keep)).flatMap { $0.files.flatMap { $0.chunks.map(BackupManifest.blobKey) } })
        var deleted = 0
        for blob in try await store.list(prefix: "blobs/")
        where !needed.contains(blob.key) && blob.lastModifiedSeconds < startedAt.timeIntervalSince1970 - 1 {
            try await store.delete(blob.key)
            deleted += 1
        }
        return (doomed.map(\.id), deleted)
    }

    // MARK: - Restore

    /// Restores backup `id` (nil: the newest) into the data root. Every file is
    /// downloaded to a scratch folder and checked against its size and SHA-256
    /// first; only a complete, verified backup is moved into place. Refuses a
    /// root that already holds engine data unless `replace`.
    public func restore(id: String?, replace: Bool = false) async throws -> RestoreReport {
        let clock = ContinuousClock.now
        let manifest: BackupManifest
        if let id { manifest = try await self.manifest(id) } else {
            guard let newest = try await list().first else { throw BackupError("no backups in \(store.displayName)") }
            manifest = newest
        }
        if !replace && hasEngineData() {
            throw BackupError("\(dataRoot) already holds engine data; restore into an empty data root (or pass --replace)")
        }
        let scratch = dataRoot + "/.restore-" + manifest.id
        try? FileManager.default.removeItem(atPath: scratch)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            var iterator = manifest.files.makeIterator()
            func addNext() -> Bool {
                guard let file = iterator.next() else { return false }
                group.addTask { try await fetchVerified(file, manifest: manifest, into: scratch) }
                return true
            }
            for _ in 0..<max(1, concurrency) where !addNext() { break }
            while try await group.next() != nil { _ = addNext() }
        }
        // Verified: move into place. The engine's collections are replaced whole.
        if FileManager.default.fileExists(atPath: engineDirectory + "/collections") && replace {
            try FileManager.default.removeItem(atPath: engineDirectory + "/collections")
        }
        for file in manifest.files {
            let target = dataRoot + "/" + file.path
            try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            if FileManager.default.fileExists(atPath: target) { try FileManager.default.removeItem(atPath: target) }
            // A restored SQLite file replaces its database whole: stale -wal/-shm would be replayed onto it.
            if file.path.hasSuffix(".sqlite") {
                for suffix in ["-wal", "-shm", "-journal"] { try? FileManager.default.removeItem(atPath: target + suffix) }
            }
            try FileManager.default.moveItem(atPath: scratch + "/" + file.path, toPath: target)
        }
        let report = RestoreReport(id: manifest.id, files: manifest.files.count, totalBytes: manifest.totalBytes, records: manifest.records,
                                   seconds: (ContinuousClock.now - clock).seconds)
        logger.notice("restored backup \(manifest.id) from \(store.displayName): \(report.files) files, \(report.totalBytes) bytes, \(report.records) records, \(String(format: "%.2f", report.seconds)) s")
        return report
    }

    private func fetchVerified(_ file: BackupManifest.File, manifest: BackupManifest, into scratch: String) async throws {
        let target = scratch + "/" + file.path
        try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: target, contents: nil)
        guard let handle = FileHandle(forWritingAtPath: target) else { throw BackupError("cannot write \(target)") }
        defer { try? handle.close() }
        for sha in file.chunks {
            let bytes: [UInt8]
            do { bytes = try await store.read(BackupManifest.blobKey(sha), maximumBytes: max(manifest.chunkBytes, 1)) } catch let error
                as ObjectStoreError where error.kind == .notFound {
                throw BackupError("backup \(manifest.id) is incomplete: a piece of \(file.path) is missing")
            }
            guard sha256Hex(bytes) == sha else {
                throw BackupError("backup \(manifest.id) is corrupt: a piece of \(file.path) fails its checksum; nothing was restored")
            }
            try handle.write(contentsOf: Data(bytes))
        }
        try handle.synchronize()
        let size = (try FileManager.default.attributesOfItem(atPath: target)[.size] as? NSNumber)?.intValue ?? -1
        let sha = try sha256Hex(ofFile: target)
        guard size == file.sizeBytes, sha == file.sha256 else {
            throw BackupError("backup \(manifest.id) is corrupt: \(file.path) reassembles to checksum \(sha.prefix(16))…, expected \(file.sha256.prefix(16))…; nothing was restored")
        }
    }

    public func hasEngineData() -> Bool {
        let collections = engineDirectory + "/collections"
        return !((try? FileManager.default.contentsOfDirectory(atPath: collections)) ?? []).isEmpty
    }

    // MARK: - Helpers

    static func newID(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let millis = Int(date.timeIntervalSince1970 * 1_000) % 1_000
        return String(format: "%04d%02d%02dT%02d%02d%02d.%03dZ-%04x", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                      Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), millis, Int.random(in: 0..<65_536))
    }

    static func regularFiles(under root: String) -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: root) else { return [] }
        var found: [String] = []
        while let relative = enumerator.nextObject() as? String {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: root + "/" + relative, isDirectory: &isDirectory), !isDirectory.boolValue {
                found.append(relative)
            }
        }
        return found.sorted()
    }

    /// Hard-links a stopped engine's files (copy where links are impossible).
    static func linkTree(_ source: String, _ target: String) throws {
        for relative in regularFiles(under: source) {
            let destination = target + "/" + relative
            try FileManager.default.createDirectory(atPath: (destination as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            if link(source + "/" + relative, destination) != 0 {
                try FileManager.default.copyItem(atPath: source + "/" + relative, toPath: destination)
            }
        }
    }
}

/// Fixed-size pieces of a file and their SHA-256s, in one streamed read.
enum Chunks {
    struct Chunk {
        var sha256: String
        var sizeBytes: Int
    }

    static func hash(path: String, chunkBytes: Int) throws -> (whole: String, chunks: [Chunk]) {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw BackupError("cannot read \(path)") }
        defer { try? handle.close() }
        var whole = SHA256Stream()
        var chunks: [Chunk] = []
        while let data = try handle.read(upToCount: chunkBytes), !data.isEmpty {
            let bytes = [UInt8](data)
            whole.update(bytes)
            chunks.append(Chunk(sha256: sha256Hex(bytes), sizeBytes: bytes.count))
        }
        return (whole.finish(), chunks)
    }

    static func read(path: String, offset: Int, count: Int) throws -> [UInt8] {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw BackupError("cannot read \(path)") }
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(offset))
        let data = try handle.read(upToCount: count) ?? Data()
        guard data.count == count else { throw BackupError("\(path) changed while it was being backed up") }
        return [UInt8](data)
    }
}
