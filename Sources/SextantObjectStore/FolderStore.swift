import Foundation

/// A local folder (or a mounted volume) used like a bucket: keys are relative
/// paths. Writes are durable (temporary file, fsync, rename, folder fsync).
public struct FolderStore: ObjectStore {
    public let root: String
    public var displayName: String { "file://" + root }

    public init(root: String) throws {
        let absolute = root.hasPrefix("/") ? root : FileManager.default.currentDirectoryPath + "/" + root
        self.root = absolute.hasSuffix("/") ? String(absolute.dropLast()) : absolute
        try FileManager.default.createDirectory(atPath: self.root, withIntermediateDirectories: true)
    }

    private func path(_ key: String) throws -> String {
        guard !key.isEmpty, !key.hasPrefix("/"), !key.split(separator: "/").contains(where: { $0 == ".." || $0 == "." }) else {
            throw ObjectStoreError(.invalidLocation, "invalid key '\(key)'")
        }
        return root + "/" + key
    }

    private func info(_ key: String, _ path: String) -> ObjectInfo? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
              (attributes[.type] as? FileAttributeType) == .typeRegular else { return nil }
        let size = (attributes[.size] as? NSNumber)?.intValue ?? 0
        let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        return ObjectInfo(key: key, sizeBytes: size, etag: "\(size)-\(Int64(modified * 1_000_000))", lastModifiedSeconds: modified)
    }

    public func list(prefix: String) async throws -> [ObjectInfo] {
        // Walk only the folder the prefix names (a log's pieces, not every blob).
        let folder = prefix.contains("/") ? String(prefix[..<(prefix.lastIndex(of: "/") ?? prefix.startIndex)]) : ""
        guard !folder.split(separator: "/").contains(where: { $0 == ".." || $0 == "." }) else {
            throw ObjectStoreError(.invalidLocation, "invalid prefix '\(prefix)'")
        }
        let start = folder.isEmpty ? root : root + "/" + folder
        guard let enumerator = FileManager.default.enumerator(atPath: start) else { return [] }
        var found: [ObjectInfo] = []
        while let below = enumerator.nextObject() as? String {
            let relative = folder.isEmpty ? below : folder + "/" + below
            guard relative.hasPrefix(prefix), !relative.contains(".partial-"), !relative.hasSuffix(Self.lockSuffix) else { continue }
            if let info = info(relative, root + "/" + relative) { found.append(info) }
        }
        return found.sorted { $0.key < $1.key }
    }

    public func readVersioned(_ key: String, maximumBytes: Int) async throws -> (bytes: [UInt8], etag: String) {
        let bytes = try await read(key, maximumBytes: maximumBytes)
        return (bytes, sha256Hex(bytes))
    }

    static let lockSuffix = ".condition-lock"

    /// Check and write under an exclusive lock on a file beside the object, so
    /// that processes sharing the folder see one winner; the ETag is the
    /// content's SHA-256 (a folder has no versions of its own).
    public func write(_ bytes: [UInt8], to key: String, if condition: WriteCondition) async throws -> String {
        let target = try path(key)
        try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let lock = open(target + Self.lockSuffix, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lock >= 0 else { throw ObjectStoreError(.io, "cannot open \(target + Self.lockSuffix): \(String(cString: strerror(errno)))") }
        defer { close(lock) }
        while flock(lock, LOCK_EX) != 0 {
            guard errno == EINTR else { throw ObjectStoreError(.io, "cannot lock \(target): \(String(cString: strerror(errno)))") }
        }
        defer { flock(lock, LOCK_UN) }
        let current = FileManager.default.contents(atPath: target).map { sha256Hex([UInt8]($0)) }
        switch condition {
        case .absent where current != nil, .matches where current == nil:
            throw ObjectStoreError(.preconditionFailed, "\(displayName)/\(key): the condition \(condition) does not hold")
        case .matches(let etag) where current != etag:
            throw ObjectStoreError(.preconditionFailed, "\(displayName)/\(key): the condition \(condition) does not hold")
        default:
            break
        }
        try LocalFiles.writeDurably(bytes, to: target)
        return sha256Hex(bytes)
    }

    public func head(_ key: String) async throws -> ObjectInfo? { info(key, try path(key)) }

    public func download(_ key: String, to destination: String) async throws {
        let source = try path(key)
        guard FileManager.default.fileExists(atPath: source) else { throw ObjectStoreError(.notFound, "\(displayName)/\(key): not found") }
        let temporary = destination + ".partial-\(getpid())"
        try? FileManager.default.removeItem(atPath: temporary)
        try FileManager.default.createDirectory(
            atPath: (destination as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: source, toPath: temporary)
        let fd = open(temporary, O_RDONLY | O_CLOEXEC)
        if fd >= 0 { fsync(fd); close(fd) }
        try LocalFiles.finish(temporary, destination)
    }

    public func read(_ key: String, maximumBytes: Int) async throws -> [UInt8] {
        let source = try path(key)
        guard let handle = FileHandle(forReadingAtPath: source) else { throw ObjectStoreError(.notFound, "\(displayName)/\(key): not found") }
        defer { try? handle.close() }
        let data = try handle.read(upToCount: maximumBytes + 1) ?? Data()
        guard data.count <= maximumBytes else { throw ObjectStoreError(.io, "\(key) is larger than \(maximumBytes) bytes") }
        return [UInt8](data)
    }

    public func upload(file: String, to key: String, sha256Hex: String?) async throws {
        let destination = try path(key)
        try FileManager.default.createDirectory(
            atPath: (destination as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let temporary = destination + ".partial-\(getpid())"
        try? FileManager.default.removeItem(atPath: temporary)
        try FileManager.default.copyItem(atPath: file, toPath: temporary)
        let fd = open(temporary, O_RDONLY | O_CLOEXEC)
        if fd >= 0 { fsync(fd); close(fd) }
        try LocalFiles.finish(temporary, destination)
    }

    public func write(_ bytes: [UInt8], to key: String) async throws {
        try LocalFiles.writeDurably(bytes, to: try path(key))
    }

    public func delete(_ key: String) async throws {
        let target = try path(key)
        if unlink(target) != 0 && errno != ENOENT {
            throw ObjectStoreError(.io, "cannot delete \(target): \(String(cString: strerror(errno)))")
        }
    }
}
