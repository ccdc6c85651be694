import Foundation

/// One object in a store: its key relative to the store's prefix.
public struct ObjectInfo: Sendable, Equatable {
    public var key: String
    public var sizeBytes: Int
    /// S3's ETag (quotes stripped) or, for a folder, size and modification time.
    public var etag: String
    public var lastModifiedSeconds: Double

    public init(key: String, sizeBytes: Int, etag: String, lastModifiedSeconds: Double) {
        self.key = key
        self.sizeBytes = sizeBytes
        self.etag = etag
        self.lastModifiedSeconds = lastModifiedSeconds
    }
}

public struct ObjectStoreError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        case notFound, accessDenied, invalidLocation, remote, transport, io
        /// A conditional write's condition did not hold (HTTP 412, or S3's 409
        /// for a conditional write racing another).
        case preconditionFailed
    }
    public let kind: Kind
    public let message: String
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
    public var description: String { message }
}

/// The narrow interface ingestion and backup need from S3 (or a folder that
/// behaves like it). Keys are relative to the store's prefix and use '/'.
public protocol ObjectStore: Sendable {
    /// For logs: the location without credentials.
    var displayName: String { get }
    /// Every object under `prefix`, sorted by key.
    func list(prefix: String) async throws -> [ObjectInfo]
    func head(_ key: String) async throws -> ObjectInfo?
    /// Streams the object into `path` (written to a temporary name, fsync'd, renamed).
    func download(_ key: String, to path: String) async throws
    func read(_ key: String, maximumBytes: Int) async throws -> [UInt8]
    /// Uploads a local file; `sha256Hex` is its checksum when the caller already has it.
    func upload(file path: String, to key: String, sha256Hex: String?) async throws
    func write(_ bytes: [UInt8], to key: String) async throws
    /// Writes only if `condition` holds at the store, atomically (S3's
    /// If-None-Match / If-Match); returns the new object's ETag. Throws
    /// `.preconditionFailed` when it does not hold.
    func write(_ bytes: [UInt8], to key: String, if condition: WriteCondition) async throws -> String
    /// The object and the ETag a conditional write compares with, in one read.
    func readVersioned(_ key: String, maximumBytes: Int) async throws -> (bytes: [UInt8], etag: String)
    func delete(_ key: String) async throws
}

/// The condition of a conditional write: the object is absent, or is exactly
/// the version with this ETag. What a lease in a bucket needs, and no more.
public enum WriteCondition: Sendable, Equatable {
    case absent
    case matches(etag: String)
}

/// Where a store lives, parsed from `s3://bucket/prefix`, `file:///path` or a plain path.
public enum ObjectStoreLocation: Sendable, Equatable {
    case s3(bucket: String, prefix: String)
    case folder(path: String)

    public init(parsing text: String) throws {
        if text.hasPrefix("s3://") || text.hasPrefix("gs://") {
            let rest = text.dropFirst(5)
            let bucket = rest.prefix { $0 != "/" }
            guard !bucket.isEmpty else { throw ObjectStoreError(.invalidLocation, "\(text): no bucket name") }
            var prefix = String(rest.dropFirst(bucket.count))
            while prefix.hasPrefix("/") { prefix.removeFirst() }
            if !prefix.isEmpty && !prefix.hasSuffix("/") { prefix += "/" }
            self = .s3(bucket: String(bucket), prefix: prefix)
        } else if text.hasPrefix("file://") {
            let path = String(text.dropFirst(7))
            guard path.hasPrefix("/") else { throw ObjectStoreError(.invalidLocation, "\(text): file URLs need an absolute path") }
            self = .folder(path: path)
        } else if text.contains("://") {
            throw ObjectStoreError(.invalidLocation, "\(text): expected s3://bucket/prefix, file:///path or a folder")
        } else {
            self = .folder(path: text)
        }
    }

    /// Parses and opens `text`; gs:// uses Google Cloud Storage's S3-interoperable
    /// endpoint (HMAC keys) unless an endpoint was given.
    public static func open(_ text: String, settings: S3Settings) throws -> any ObjectStore {
        var settings = settings
        if text.hasPrefix("gs://") && settings.endpoint == nil {
            settings.endpoint = "https://storage.googleapis.com"
            settings.pathStyle = true
            settings.region = "auto"
        }
        return try ObjectStoreLocation(parsing: text).open(settings)
    }

    /// Opens the store; S3 settings come from `settings` (flags or the AWS environment).
    public func open(_ settings: S3Settings) throws -> any ObjectStore {
        switch self {
        case .folder(let path): return try FolderStore(root: path)
        case .s3(let bucket, let prefix): return try S3Store(bucket: bucket, prefix: prefix, settings: settings)
        }
    }
}

/// Files only move into place complete: a temporary name, fsync, rename, and
/// an fsync of the folder, so a crash never leaves a half-written object.
enum LocalFiles {
    static func writeDurably(_ bytes: [UInt8], to path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let temporary = path + ".partial-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ObjectStoreError(.io, "cannot create \(temporary): \(String(cString: strerror(errno)))") }
        var offset = 0
        let ok = bytes.withUnsafeBytes { raw -> Bool in
            guard let base = raw.baseAddress else { return true }
            while offset < raw.count {
                let written = Foundation.write(fd, base + offset, raw.count - offset)
                if written < 0 { if errno == EINTR { continue }; return false }
                offset += written
            }
            return true
        }
        guard ok, fsync(fd) == 0 else {
            close(fd)
            unlink(temporary)
            throw ObjectStoreError(.io, "cannot write \(temporary): \(String(cString: strerror(errno)))")
        }
        close(fd)
        try finish(temporary, path)
    }

    /// Renames a complete temporary file into place and makes the rename durable.
    static func finish(_ temporary: String, _ path: String) throws {
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw ObjectStoreError(.io, "cannot rename \(temporary) to \(path): \(String(cString: strerror(errno)))")
        }
        let directory = open((path as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directory >= 0 {
            fsync(directory)
            close(directory)
        }
    }
}
