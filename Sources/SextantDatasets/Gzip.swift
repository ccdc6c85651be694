import CZlib
import Foundation

/// Streams the lines of a gzip file (the dataset's records.jsonl.gz) without
/// holding the decompressed text in memory.
public struct GzipLineReader {
    private let handle: gzFile
    private var buffer = [UInt8]()
    private var position = 0
    private var finished = false
    private let chunk = [UInt8](repeating: 0, count: 1 << 16)

    public init(path: String) throws(DatasetError) {
        guard FileManager.default.fileExists(atPath: path) else { throw .missingFile(path) }
        guard let handle = gzopen(path, "rb") else { throw .unreadable(path, "gzopen failed") }
        self.handle = handle
    }

    public func close() { gzclose(handle) }

    /// The next line without its newline, or nil at the end.
    public mutating func nextLine() -> String? {
        while true {
            if let newline = buffer[position...].firstIndex(of: 10) {
                let line = String(decoding: buffer[position..<newline], as: UTF8.self)
                position = newline + 1
                return line
            }
            if finished {
                guard position < buffer.count else { return nil }
                let line = String(decoding: buffer[position...], as: UTF8.self)
                position = buffer.count
                return line
            }
            buffer.removeFirst(position)
            position = 0
            var scratch = chunk
            let count = scratch.withUnsafeMutableBytes { gzread(handle, $0.baseAddress, UInt32($0.count)) }
            if count <= 0 { finished = true } else { buffer.append(contentsOf: scratch[0..<Int(count)]) }
        }
    }
}

/// One record of the debian-minilm dataset (see its README).
public struct DatasetRecord: Sendable {
    public var id: String
    public var title: String
    public var body: String
    /// section, priority, version, maintainer, architecture as strings; installed_size as Int.
    public var strings: [String: String]
    public var installedSize: Int

    /// The text the dataset's vectors were computed from.
    public var embeddedText: String { title + ". " + body }
}

public enum DebianMiniLM {
    /// Reads the first `limit` records of records.jsonl.gz, in corpus order.
    public static func records(_ directory: String, limit: Int = .max) throws -> [DatasetRecord] {
        var reader = try GzipLineReader(path: directory + "/records.jsonl.gz")
        defer { reader.close() }
        var records: [DatasetRecord] = []
        while records.count < limit, let line = reader.nextLine() {
            guard !line.isEmpty else { continue }
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let id = object["id"] as? String, let title = object["title"] as? String,
                let body = object["body"] as? String, let metadata = object["metadata"] as? [String: Any]
            else { throw DatasetError.malformed(directory + "/records.jsonl.gz", "record \(records.count) is not as documented") }
            var strings: [String: String] = [:]
            for (key, value) in metadata { if let text = value as? String { strings[key] = text } }
            records.append(DatasetRecord(
                id: id, title: title, body: body, strings: strings,
                installedSize: (metadata["installed_size"] as? NSNumber)?.intValue ?? 0))
        }
        return records
    }
}
