import Foundation
import Logging
import SextantObjectStore
import SextantStorage

/// Where a primary's log lives in object storage, beside the snapshots that
/// `--backup-to` already writes there (`backups/`, `blobs/`):
///
///     log/collections/ID.json      the collection as it is now (`ShippedCollection`)
///     log/collections/ID.deleted   the collection was deleted on the primary
///     log/wal/ID/LSN               WAL frames from LSN (16 hex digits) on, as in the WAL
///     log/wal/ID/HEAD              the last LSN shipped (`ShippedHead`), written after each piece
///
/// A piece is written before the head that names it, so a follower that reads
/// the head finds every piece up to it. Pieces hold whole, checksummed frames
/// and are never rewritten: a piece's key says where it starts, its frames
/// where it ends.
public enum ShippedLog {
    public static let collectionsPrefix = "log/collections/"

    public static func descriptorKey(_ id: String) -> String { collectionsPrefix + id + ".json" }
    public static func tombstoneKey(_ id: String) -> String { collectionsPrefix + id + ".deleted" }
    public static func piecesPrefix(_ id: String) -> String { "log/wal/" + id + "/" }
    public static func headKey(_ id: String) -> String { piecesPrefix(id) + "HEAD" }

    public static func pieceKey(_ id: String, firstLSN: LSN) -> String {
        let hex = String(firstLSN, radix: 16)
        return piecesPrefix(id) + String(repeating: "0", count: max(0, 16 - hex.count)) + hex
    }

    /// The first LSN of a piece from its key; nil for the head and anything else.
    public static func firstLSN(ofPieceKey key: String) -> LSN? {
        guard let name = key.split(separator: "/").last, name.count == 16 else { return nil }
        return LSN(name, radix: 16)
    }

    /// A descriptor or head is small; anything larger is not ours.
    static let maximumDocumentBytes = 1 << 20
    /// A piece holds at most `StorageLimits.maximumShippedChunkBytes`, or one larger entry.
    static var maximumPieceBytes: Int { max(StorageLimits.maximumShippedChunkBytes, StorageLimits.maximumEntryBytes + 64) }

    static func isMissing(_ error: any Error) -> Bool {
        (error as? ObjectStoreError)?.kind == .notFound
    }
}

/// A collection's description: what a follower needs to create it before
/// applying its log from the first entry.
public struct ShippedCollection: Codable, Sendable, Equatable {
    public static let currentFormat = 1
    public var format = ShippedCollection.currentFormat
    public var configuration: CollectionConfiguration

    public init(configuration: CollectionConfiguration) { self.configuration = configuration }
}

/// The newest shipped position of one collection.
public struct ShippedHead: Codable, Sendable, Equatable {
    public var lastLSN: LSN
    public var shippedAtSeconds: Double

    public init(lastLSN: LSN, shippedAtSeconds: Double) {
        self.lastLSN = lastLSN
        self.shippedAtSeconds = shippedAtSeconds
    }
}

public struct ReplicationError: Error, Sendable, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension ObjectStore {
    func readJSON<T: Decodable>(_ type: T.Type, _ key: String) async throws -> T? {
        let bytes: [UInt8]
        do { bytes = try await read(key, maximumBytes: ShippedLog.maximumDocumentBytes) } catch {
            if ShippedLog.isMissing(error) { return nil }
            throw error
        }
        do { return try JSONDecoder().decode(type, from: Data(bytes)) } catch {
            throw ReplicationError("\(displayName): \(key) does not decode: \(error)")
        }
    }

    func writeJSON<T: Encodable>(_ value: T, _ key: String) async throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try await write(Array(try encoder.encode(value)), to: key)
    }
}

/// The failures of a repeating round (shipping, following), logged once when
/// they start and once when they end, not every round.
struct RoundLog {
    let activity: String
    let logger: Logger
    private var failing = false

    init(_ activity: String, logger: Logger) {
        self.activity = activity
        self.logger = logger
    }

    mutating func succeeded() {
        if failing { logger.notice("\(activity) works again") }
        failing = false
    }

    mutating func failed(_ error: any Error) {
        if !failing { logger.error("\(activity) failed: \(error); retrying every round") }
        failing = true
    }
}
