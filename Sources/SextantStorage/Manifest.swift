import Foundation
import SextantIndex
import SextantKernels

struct FileDigest: Codable, Equatable {
    var sizeBytes: Int
    var crc32c: UInt32
}

/// The small checksummed file that says which generation of data files is
/// current and which WAL position it covers. Replaced only by atomic rename.
/// Layout: "SXM1", u32 CRC32C of the JSON body, the JSON body.
package struct Manifest: Codable, Equatable {
    /// 2: a collection may quantize (its configuration says how, its index
    /// state carries the code book, its generation a codes file). Version 1
    /// manifests are read as unquantized collections, which they are.
    static let formatVersion = 2
    static let readableVersions = 1...2
    var formatVersion = Manifest.formatVersion
    var configuration: CollectionConfiguration
    var generation: UInt64
    var checkpointLSN: LSN
    var index: HNSWState
    var heapUsedBytes: Int
    var liveRecords: Int
    var files: [String: FileDigest]
    /// Per metadata key, the value types records have held (`MetadataTypes`);
    /// nil in manifests written before they were kept.
    var fieldTypes: [String: UInt8]? = nil

    static let fileName = "MANIFEST"
    static let magic: [UInt8] = Array("SXM1".utf8)

    package func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let body: [UInt8]
        do { body = Array(try encoder.encode(self)) } catch { throw StorageError.io("manifest does not encode: \(error)") }
        var out = Self.magic
        withUnsafeBytes(of: CRC32C.checksum(body).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: body)
        return out
    }

    static func read(_ path: String, disk: Files) throws -> Manifest {
        try decode(try disk.readAll(path), path: path)
    }

    /// A manifest from its bytes; `path` names it in errors.
    package static func decode(_ bytes: [UInt8], path: String) throws -> Manifest {
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
        guard readableVersions.contains(manifest.formatVersion) else {
            throw StorageError.corrupted("\(path): format version \(manifest.formatVersion), this build reads \(readableVersions)")
        }
        return manifest
    }

    static func generationDirectory(_ generation: UInt64) -> String {
        let hex = String(generation, radix: 16)
        return "gen-" + String(repeating: "0", count: max(0, 12 - hex.count)) + hex
    }
}
