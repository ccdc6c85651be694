import Foundation
import SextantIndex
import SextantKernels
import SextantPayload

/// A collection's fixed shape and its (mutable) name and metadata.
public struct CollectionConfiguration: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var dimension: Int
    public var metric: Metric
    public var hnsw: HNSWParameters
    public var capacity: Int
    public var metadata: [String: TaggedValue]
    public var createdAtSeconds: Double

    public init(id: String = UUID().uuidString.lowercased(), name: String, dimension: Int, metric: Metric = .cosine,
                hnsw: HNSWParameters = HNSWParameters(), capacity: Int = StorageLimits.defaultCollectionCapacity,
                metadata: Metadata = [:], createdAtSeconds: Double = Date().timeIntervalSince1970) {
        self.id = id
        self.name = name
        self.dimension = dimension
        self.metric = metric
        self.hnsw = hnsw
        self.capacity = capacity
        self.metadata = metadata.mapValues(TaggedValue.init)
        self.createdAtSeconds = createdAtSeconds
    }

    public var collectionMetadata: Metadata { metadata.mapValues(\.value) }

    /// Names: 1...512 bytes of [A-Za-z0-9._-], starting and ending alphanumeric (ChromaDB's rule, minus its 3-byte minimum).
    public static func validateName(_ name: String) throws {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= StorageLimits.maximumCollectionNameBytes else {
            throw StorageError.invalidArgument("collection name must be 1...\(StorageLimits.maximumCollectionNameBytes) bytes")
        }
        func alphanumeric(_ byte: UInt8) -> Bool {
            (48...57).contains(byte) || (65...90).contains(byte) || (97...122).contains(byte)
        }
        guard bytes.allSatisfy({ alphanumeric($0) || $0 == 46 || $0 == 95 || $0 == 45 }),
            let first = bytes.first, let last = bytes.last, alphanumeric(first), alphanumeric(last)
        else {
            throw StorageError.invalidArgument(
                "collection name '\(name.prefix(60))' must use [A-Za-z0-9._-] and start and end with a letter or digit")
        }
    }

    /// The index layout; a collection whose dimension is still to be decided by
    /// its first write gets a one-dimension placeholder of capacity one.
    func layout() throws -> HNSWLayout {
        if dimension == 0 {
            do { return try HNSWLayout(dimensions: 1, metric: metric, parameters: hnsw, capacity: 1) } catch {
                throw StorageError(error)
            }
        }
        do { return try HNSWLayout(dimensions: dimension, metric: metric, parameters: hnsw, capacity: capacity) } catch {
            throw StorageError(error)
        }
    }
}

/// A metadata value with its type kept in JSON (3 and 3.0 stay distinct).
public struct TaggedValue: Codable, Sendable, Equatable {
    public let value: MetadataValue
    public init(_ value: MetadataValue) { self.value = value }

    enum Keys: String, CodingKey { case s, i, f, b }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Keys.self)
        if let text = try container.decodeIfPresent(String.self, forKey: .s) {
            value = .string(text)
        } else if let number = try container.decodeIfPresent(Int64.self, forKey: .i) {
            value = .int(number)
        } else if let number = try container.decodeIfPresent(Double.self, forKey: .f) {
            value = .double(number)
        } else {
            value = .bool(try container.decode(Bool.self, forKey: .b))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        switch value {
        case .string(let text): try container.encode(text, forKey: .s)
        case .int(let number): try container.encode(number, forKey: .i)
        case .double(let number): try container.encode(number, forKey: .f)
        case .bool(let flag): try container.encode(flag, forKey: .b)
        }
    }
}

struct FileDigest: Codable, Equatable {
    var sizeBytes: Int
    var crc32c: UInt32
}

/// The small checksummed file that says which generation of data files is
/// current and which WAL position it covers. Replaced only by atomic rename.
/// Layout: "SXM1", u32 CRC32C of the JSON body, the JSON body.
struct Manifest: Codable, Equatable {
    static let formatVersion = 1
    var formatVersion = Manifest.formatVersion
    var configuration: CollectionConfiguration
    var generation: UInt64
    var checkpointLSN: LSN
    var index: HNSWState
    var heapUsedBytes: Int
    var liveRecords: Int
    var files: [String: FileDigest]

    static let fileName = "MANIFEST"
    static let magic: [UInt8] = Array("SXM1".utf8)

    func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let body: [UInt8]
        do { body = Array(try encoder.encode(self)) } catch { throw StorageError.io("manifest does not encode: \(error)") }
        var out = Self.magic
        withUnsafeBytes(of: CRC32C.checksum(body).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: body)
        return out
    }

    static func read(_ path: String) throws -> Manifest {
        let bytes = try Files.readAll(path)
        guard bytes.count > 8, Array(bytes[0..<4]) == magic else {
            throw StorageError.corrupted("\(path): not a Sextant manifest (bad magic or truncated)")
        }
        let stored = bytes.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: 4, as: UInt32.self)) }
        let body = Array(bytes[8...])
        guard CRC32C.checksum(body) == stored else { throw StorageError.corrupted("\(path): checksum mismatch") }
        let manifest: Manifest
        do { manifest = try JSONDecoder().decode(Manifest.self, from: Data(body)) } catch {
            throw StorageError.corrupted("\(path): does not decode: \(error)")
        }
        guard manifest.formatVersion == formatVersion else {
            throw StorageError.corrupted("\(path): format version \(manifest.formatVersion), this build reads \(formatVersion)")
        }
        return manifest
    }

    static func generationDirectory(_ generation: UInt64) -> String {
        let hex = String(generation, radix: 16)
        return "gen-" + String(repeating: "0", count: max(0, 12 - hex.count)) + hex
    }
}
