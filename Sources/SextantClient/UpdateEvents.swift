import Foundation

/// "This collection's data changed": what the scraper and the ingestion worker
/// publish after a run that wrote something, and what the bot gateway waits on.
///
/// The event lives in the collection's own metadata, so it is durable in the
/// engine, survives restarts and backups, and any process holding a client sees
/// it with one cheap `getCollection` call; there is no second channel to run.
/// `sequence` only grows; a waiter compares it with the last one it saw.
public struct UpdateEvent: Sendable, Equatable, Codable {
    public static let sequenceKey = "sextant:update_seq"
    public static let runKey = "sextant:update_run"
    public static let sourceKey = "sextant:update_source"
    public static let countsKey = "sextant:update_counts"
    public static let timeKey = "sextant:updated_at"

    public var collection: String
    public var sequence: Int64
    /// Which run made the change (the scraper's or the worker's run id).
    public var runID: String
    /// "scrape" or "ingest".
    public var source: String
    /// What the run did, e.g. {"upserted": 12, "deleted": 3}.
    public var counts: [String: Int]
    /// ISO 8601.
    public var time: String

    public init(collection: String, sequence: Int64, runID: String, source: String, counts: [String: Int], time: String) {
        self.collection = collection
        self.sequence = sequence
        self.runID = runID
        self.source = source
        self.counts = counts
        self.time = time
    }

    /// The last event recorded in `info`'s metadata, if any.
    public init?(_ info: CollectionInfo) {
        guard case .int(let sequence)? = info.metadata[Self.sequenceKey] else { return nil }
        func text(_ key: String) -> String {
            if case .string(let value)? = info.metadata[key] { return value }
            return ""
        }
        let counts = (try? JSONDecoder().decode([String: Int].self, from: Data(text(Self.countsKey).utf8))) ?? [:]
        self.init(collection: info.name, sequence: sequence, runID: text(Self.runKey), source: text(Self.sourceKey),
                  counts: counts, time: text(Self.timeKey))
    }
}

extension CollectionHandle {
    /// Records an update event in the collection's metadata and returns it.
    /// Read-modify-write: two publishers racing may both write the same next
    /// sequence number, which still moves every waiter past what it saw.
    @discardableResult
    public func publishUpdate(runID: String, source: String, counts: [String: Int]) async throws -> UpdateEvent {
        let fresh = try await client.getCollection(id: info.id)
        let previous = UpdateEvent(fresh.info)?.sequence ?? 0
        let countsText = String(decoding: (try? JSONEncoder().encode(counts)) ?? Data("{}".utf8), as: UTF8.self)
        let event = UpdateEvent(collection: fresh.info.name, sequence: previous + 1, runID: runID, source: source,
                                counts: counts, time: ISO8601DateFormatter().string(from: Date()))
        var metadata = fresh.info.metadata
        metadata[UpdateEvent.sequenceKey] = .int(event.sequence)
        metadata[UpdateEvent.runKey] = .string(runID)
        metadata[UpdateEvent.sourceKey] = .string(source)
        metadata[UpdateEvent.countsKey] = .string(countsText)
        metadata[UpdateEvent.timeKey] = .string(event.time)
        _ = try await fresh.modify(metadata: metadata)
        return event
    }
}

extension SextantClient {
    /// The last update event of `collection` (nil if none was ever published).
    public func lastUpdate(collection: String) async throws -> UpdateEvent? {
        UpdateEvent(try await getCollection(name: collection).info)
    }

    /// Waits until `collection`'s update sequence passes `after`, polling every
    /// `pollMilliseconds`; returns the new event. Cancellable.
    public func waitForUpdate(collection: String, after sequence: Int64, pollMilliseconds: Int = 1_000) async throws -> UpdateEvent {
        precondition(pollMilliseconds > 0)
        while true {
            if let event = try await lastUpdate(collection: collection), event.sequence > sequence { return event }
            try await Task.sleep(nanoseconds: UInt64(pollMilliseconds) * 1_000_000)
        }
    }
}
