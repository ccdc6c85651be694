import AsyncHTTPClient
import Foundation
import NIOCore
import SextantObjectStore
import Synchronization

/// One CSV file a source offers.
public struct SourceFile: Sendable, Equatable {
    public var name: String
    /// S3 ETag, HTTP ETag / Last-Modified, or size+mtime for a folder.
    public var etag: String
    public var sizeBytes: Int
}

/// Where CSV batches come from. A source lists what it has, fetches a file to
/// a local path, and is told when a file is done (a folder moves it to done/).
public protocol IngestSource: Sendable {
    /// Identifies the source in the ledger, e.g. "folder:/data/inbox", "s3://bucket/prefix".
    var identity: String { get }
    func candidates() async throws -> [SourceFile]
    /// A local path holding the file, or nil when the source says it has not changed.
    func fetch(_ file: SourceFile, spool: String) async throws -> String?
    func finished(_ file: SourceFile, localPath: String) async throws
    /// The file cannot be ingested; where the source can, it puts it aside
    /// with the reason (a folder: failed/NAME and failed/NAME.reason) and
    /// returns where, so it is not retried until it comes back changed.
    func failed(_ file: SourceFile, localPath: String, reason: String) async throws -> String?
}

extension IngestSource {
    public func failed(_ file: SourceFile, localPath: String, reason: String) async throws -> String? { nil }
}

func isCSV(_ name: String) -> Bool { name.lowercased().hasSuffix(".csv") }

/// A local folder (an inbox): *.csv at its top level, in name order. Writers
/// should write under another name and rename into place; files whose name
/// starts with '.' are ignored. Finished files move to done/.
public struct FolderSource: IngestSource {
    public let folder: String
    public var identity: String { "folder:" + folder }

    public init(folder: String) throws {
        self.folder = folder.hasPrefix("/") ? folder : FileManager.default.currentDirectoryPath + "/" + folder
        try FileManager.default.createDirectory(atPath: self.folder, withIntermediateDirectories: true)
    }

    public func candidates() async throws -> [SourceFile] {
        let names = try FileManager.default.contentsOfDirectory(atPath: folder)
        return names.filter { isCSV($0) && !$0.hasPrefix(".") }.sorted().compactMap { name in
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: folder + "/" + name),
                  (attributes[.type] as? FileAttributeType) == .typeRegular else { return nil }
            let size = (attributes[.size] as? NSNumber)?.intValue ?? 0
            let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            return SourceFile(name: name, etag: "\(size)-\(Int64(modified * 1_000_000))", sizeBytes: size)
        }
    }

    public func fetch(_ file: SourceFile, spool: String) async throws -> String? { folder + "/" + file.name }

    public func finished(_ file: SourceFile, localPath: String) async throws {
        let done = folder + "/done"
        try FileManager.default.createDirectory(atPath: done, withIntermediateDirectories: true)
        var target = done + "/" + file.name
        if FileManager.default.fileExists(atPath: target) {
            target = done + "/" + (file.name as NSString).deletingPathExtension + "-\(Int(Date().timeIntervalSince1970)).csv"
        }
        try FileManager.default.moveItem(atPath: localPath, toPath: target)
    }

    public func failed(_ file: SourceFile, localPath: String, reason: String) async throws -> String? {
        let failed = folder + "/failed"
        try FileManager.default.createDirectory(atPath: failed, withIntermediateDirectories: true)
        let target = failed + "/" + file.name
        try? FileManager.default.removeItem(atPath: target)
        try? FileManager.default.removeItem(atPath: target + ".reason")
        try FileManager.default.moveItem(atPath: localPath, toPath: target)
        try Data((reason + "\n").utf8).write(to: URL(fileURLWithPath: target + ".reason"))
        return target
    }
}

/// An S3-compatible bucket and prefix: *.csv under the prefix. Objects are
/// downloaded to the spool; done ones are only marked in the ledger (the
/// bucket may be read-only to the worker).
public struct BucketSource: IngestSource {
    public let store: any ObjectStore
    public var identity: String { store.displayName }

    public init(store: any ObjectStore) { self.store = store }

    public func candidates() async throws -> [SourceFile] {
        try await store.list(prefix: "").filter { isCSV($0.key) }.map {
            SourceFile(name: $0.key, etag: $0.etag, sizeBytes: $0.sizeBytes)
        }
    }

    public func fetch(_ file: SourceFile, spool: String) async throws -> String? {
        let path = spool + "/" + file.name.replacingOccurrences(of: "/", with: "__")
        try await store.download(file.name, to: path)
        return path
    }

    public func finished(_ file: SourceFile, localPath: String) async throws { try? FileManager.default.removeItem(atPath: localPath) }
}

/// One CSV file at an HTTP(S) URL, fetched with a conditional GET (the ETag or
/// Last-Modified of the last fetch), so an unchanged file costs one 304.
public final class URLSource: IngestSource, Sendable {
    public let url: String
    public var identity: String { url }
    private struct State {
        /// Validators of the last processed version, from the ledger.
        var etag: String?
        var lastModified: String?
        /// The validator of what the last fetch returned, for the ledger.
        var fetched = ""
    }
    private let state = Mutex(State())
    public static let maximumBytes = 2 << 30

    public init(url: String) { self.url = url }

    var name: String {
        let path = url.split(separator: "?").first.map(String.init) ?? url
        let last = path.split(separator: "/").last.map(String.init) ?? "download.csv"
        return isCSV(last) ? last : last + ".csv"
    }

    public func candidates() async throws -> [SourceFile] { [SourceFile(name: name, etag: "", sizeBytes: 0)] }

    /// `previous` is the stored validator ("etag:…" or "modified:…") of the last processed version.
    public func remember(_ previous: String?) {
        state.withLock { state in
            state.etag = nil
            state.lastModified = nil
            if let previous, previous.hasPrefix("etag:") { state.etag = String(previous.dropFirst(5)) }
            if let previous, previous.hasPrefix("modified:") { state.lastModified = String(previous.dropFirst(9)) }
        }
    }

    public var lastValidator: String { state.withLock { $0.fetched } }

    public func fetch(_ file: SourceFile, spool: String) async throws -> String? {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "User-Agent", value: "Sextant-ingest/0.1")
        let (etag, modified) = state.withLock { ($0.etag, $0.lastModified) }
        if let etag { request.headers.add(name: "If-None-Match", value: etag) }
        if let modified { request.headers.add(name: "If-Modified-Since", value: modified) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(600))
        if response.status.code == 304 { return nil }
        guard response.status.code == 200 else { throw IngestError.source("\(url): HTTP \(response.status.code)") }
        let path = spool + "/url-" + name
        try FileManager.default.createDirectory(atPath: spool, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: path, contents: nil)
        guard let handle = FileHandle(forWritingAtPath: path) else { throw IngestError.source("cannot write \(path)") }
        defer { try? handle.close() }
        var total = 0
        for try await buffer in response.body {
            total += buffer.readableBytes
            guard total <= Self.maximumBytes else { throw IngestError.source("\(url) is larger than \(Self.maximumBytes) bytes") }
            try handle.write(contentsOf: Data(buffer.readableBytesView))
        }
        let validator = response.headers.first(name: "etag").map { "etag:" + $0 }
            ?? response.headers.first(name: "last-modified").map { "modified:" + $0 } ?? ""
        state.withLock { $0.fetched = validator }
        return path
    }

    public func finished(_ file: SourceFile, localPath: String) async throws { try? FileManager.default.removeItem(atPath: localPath) }
}

/// Opens SOURCE: a folder path, s3://bucket/prefix (or gs://), or http(s)://.
public func openSource(_ text: String, s3: S3Settings) throws -> any IngestSource {
    if text.hasPrefix("http://") || text.hasPrefix("https://") { return URLSource(url: text) }
    if text.hasPrefix("s3://") || text.hasPrefix("gs://") {
        return BucketSource(store: try ObjectStoreLocation.open(text, settings: s3))
    }
    if text.hasPrefix("file://") { return try FolderSource(folder: String(text.dropFirst(7))) }
    return try FolderSource(folder: text)
}
