import Foundation
import Logging
import SextantConcurrency
import SextantObjectStore
import Synchronization

/// The lease object at `log/LEASE`: who may write to this location, until when.
public struct LeaseRecord: Codable, Sendable, Equatable {
    public var holder: String
    /// Wall-clock seconds; another primary may take over after it.
    public var expiresAtSeconds: Double
    public var renewedAtSeconds: Double

    public init(holder: String, expiresAtSeconds: Double, renewedAtSeconds: Double) {
        self.holder = holder
        self.expiresAtSeconds = expiresAtSeconds
        self.renewedAtSeconds = renewedAtSeconds
    }
}

/// One writer per location, without a consensus protocol of our own: a
/// primary takes the lease object with a conditional write (created only if
/// absent, replaced only if unchanged since it was read) and renews it every
/// third of its term. A primary that cannot renew stops acknowledging writes a
/// third of a term before the lease could pass to another (`isValid`), and a
/// second primary on the same location waits out a lease it finds (a dead
/// holder's), then refuses to start if the holder renewed meanwhile.
///
/// The lease trusts wall clocks to within a third of the term (15 s by
/// default: 5 s); Kubernetes' restart of a single StatefulSet replica is the
/// rest of the failover story (docs/OPERATIONS.md).
public actor PrimaryLease {
    public static let key = "log/LEASE"
    public let store: any ObjectStore
    public let holder: String
    public let termSeconds: Double
    let logger: Logger
    private var etag: String?
    /// Monotonic milliseconds until which writes may be acknowledged; 0: not held.
    private let validUntil = LeaseClock()

    public init(store: any ObjectStore, holder: String, termSeconds: Double = 15, logger: Logger) {
        precondition(termSeconds >= 1, "validated by the command line")
        self.store = store
        self.holder = holder
        self.termSeconds = termSeconds
        self.logger = logger
    }

    /// A holder name unique to this process: host, pid and a random suffix.
    public static func processHolder() -> String {
        "\(ProcessInfo.processInfo.hostName)/\(getpid())/\(UInt32.random(in: 0...UInt32.max))"
    }

    /// Whether a write may be acknowledged now: read on every write, without the actor.
    public nonisolated var isValid: Bool { validUntil.isValid }

    /// Takes the lease, waiting out one found (at most a term and a bit);
    /// throws if another primary holds it and keeps renewing.
    public func acquire() async throws {
        for attempt in 0..<2 {
            let found: (record: LeaseRecord, etag: String)?
            do {
                let (bytes, etag) = try await store.readVersioned(Self.key, maximumBytes: ShippedLog.maximumDocumentBytes)
                let record: LeaseRecord
                do { record = try JSONDecoder().decode(LeaseRecord.self, from: Data(bytes)) } catch {
                    throw ReplicationError("\(store.displayName)/\(Self.key) does not decode as a lease: \(error)")
                }
                found = (record, etag)
            } catch {
                guard (error as? ObjectStoreError)?.kind == .notFound else { throw error }
                found = nil
            }
            if let found, found.record.holder != holder {
                let remaining = found.record.expiresAtSeconds - Date().timeIntervalSince1970
                if remaining > 0 {
                    guard attempt == 0 else {
                        throw ReplicationError("another primary (\(found.record.holder)) holds the lease on \(store.displayName) and keeps renewing it: one primary per location")
                    }
                    logger.notice("the lease on \(store.displayName) is held by \(found.record.holder) for \(String(format: "%.1f", remaining)) s more; waiting for it to lapse")
                    try await Task.sleep(for: .milliseconds(Int((remaining + 0.5) * 1_000)))
                    continue
                }
            }
            do {
                try await write(condition: found.map { .matches(etag: $0.etag) } ?? .absent)
                logger.notice("took the lease on \(store.displayName) for \(String(format: "%.0f", termSeconds)) s terms")
                return
            } catch {
                guard (error as? ObjectStoreError)?.kind == .preconditionFailed else { throw error }
                guard attempt == 0 else { throw ReplicationError("another primary took the lease on \(store.displayName) first") }
            }
        }
        throw ReplicationError("the lease on \(store.displayName) could not be taken")
    }

    /// Renews once; on failure writes stop being acknowledged once the held
    /// term's safe part has passed.
    public func renew() async throws {
        guard let etag else { throw ReplicationError("the lease on \(store.displayName) is not held") }
        do {
            try await write(condition: .matches(etag: etag))
        } catch {
            guard (error as? ObjectStoreError)?.kind == .preconditionFailed else { throw error }
            // A renewal whose reply was lost still took effect: the lease is ours under a newer ETag.
            let (bytes, current) = try await store.readVersioned(Self.key, maximumBytes: ShippedLog.maximumDocumentBytes)
            guard (try? JSONDecoder().decode(LeaseRecord.self, from: Data(bytes)))?.holder == holder else { throw error }
            try await write(condition: .matches(etag: current))
        }
    }

    private func write(condition: WriteCondition) async throws {
        let started = MonotonicClock.milliseconds()
        let now = Date().timeIntervalSince1970
        let record = LeaseRecord(holder: holder, expiresAtSeconds: now + termSeconds, renewedAtSeconds: now)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        etag = try await store.write(Array(try encoder.encode(record)), to: Self.key, if: condition)
        // Counted from before the write: the store may have taken it at any
        // point since, and others see the term from its own clock.
        validUntil.extend(to: started + UInt64(termSeconds * 1_000 * 2 / 3))
    }

    /// Renews every third of a term until cancelled; a lost lease (another
    /// holder replaced it) ends writes at once and for good.
    public func run() async {
        var failing = false
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(Int(termSeconds * 1_000 / 3)))
            guard !Task.isCancelled else { return }
            do {
                try await renew()
                if failing { logger.notice("renewed the lease on \(store.displayName) again") }
                failing = false
            } catch {
                if (error as? ObjectStoreError)?.kind == .preconditionFailed {
                    validUntil.revoke()
                    logger.error("lost the lease on \(store.displayName) to another primary: this engine acknowledges no more writes")
                    return
                }
                if !failing {
                    logger.error("cannot renew the lease on \(store.displayName): \(error); writes stop being acknowledged when the held term runs short")
                }
                failing = true
            }
        }
    }

    /// Gives the lease up (a clean shutdown), so that the next primary need not wait.
    public func release() async {
        guard let etag else { return }
        validUntil.revoke()
        let record = LeaseRecord(holder: holder, expiresAtSeconds: 0, renewedAtSeconds: Date().timeIntervalSince1970)
        do {
            _ = try await store.write(Array(try JSONEncoder().encode(record)), to: Self.key, if: .matches(etag: etag))
            self.etag = nil
        } catch {
            logger.error("could not release the lease on \(store.displayName): \(error); the next primary waits for it to lapse")
        }
    }
}

/// The held term on the monotonic clock, readable from any thread.
final class LeaseClock: Sendable {
    private let untilMilliseconds = Atomic<UInt64>(0)
    private let revoked = Atomic<Bool>(false)

    var isValid: Bool { !revoked.load(ordering: .acquiring) && MonotonicClock.milliseconds() < untilMilliseconds.load(ordering: .acquiring) }

    func extend(to milliseconds: UInt64) {
        guard !revoked.load(ordering: .acquiring) else { return }
        untilMilliseconds.store(milliseconds, ordering: .releasing)
    }

    func revoke() { revoked.store(true, ordering: .releasing) }
}
