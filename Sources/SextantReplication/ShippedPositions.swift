import Foundation
import SextantConcurrency
import SextantStorage
import Synchronization

/// Writes waiting to be in object storage before they are acknowledged
/// (`sextant engine --ack-after-ship`): the durability a lost volume needs.
/// A waiter asks the shipper for a round at once; one not shipped within
/// `timeoutMilliseconds` fails UNAVAILABLE (it is durable here and ships
/// later, but the client is not told it is safe).
public final class ShippedPositions: Sendable {
    private struct Waiter {
        let collectionID: String
        let lsn: LSN
        let sinceMilliseconds: UInt64
        let continuation: CheckedContinuation<Void, any Error>
    }
    private let waiters = Mutex<[Waiter]>([])
    /// Set by a new waiter, taken by the shipper's loop: ship now.
    let wanted = Atomic<Bool>(false)
    public let timeoutMilliseconds: UInt64
    public let location: String

    public init(location: String, timeoutMilliseconds: UInt64 = 30_000) {
        self.location = location
        self.timeoutMilliseconds = timeoutMilliseconds
    }

    /// Returns once `lsn` of `collection` is in object storage.
    public func waitShipped(_ collection: Collection, _ lsn: LSN) async throws {
        if collection.firstUnshippedLSN.load(ordering: .acquiring) > lsn { return }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            waiters.withLock {
                $0.append(Waiter(collectionID: collection.id, lsn: lsn, sinceMilliseconds: MonotonicClock.milliseconds(), continuation: continuation))
            }
            wanted.store(true, ordering: .releasing)
        }
    }

    var hasWaiters: Bool { waiters.withLock { !$0.isEmpty } }

    /// After a shipping round: releases the writes it shipped, fails those
    /// that waited past the bound.
    func settle(_ storage: StorageEngine) {
        let shipped = Dictionary(storage.list().map { ($0.id, $0.firstUnshippedLSN.load(ordering: .acquiring)) },
                                 uniquingKeysWith: { a, _ in a })
        let now = MonotonicClock.milliseconds()
        var released: [CheckedContinuation<Void, any Error>] = []
        var expired: [CheckedContinuation<Void, any Error>] = []
        waiters.withLock { list in
            list.removeAll { waiter in
                if let first = shipped[waiter.collectionID], first > waiter.lsn {
                    released.append(waiter.continuation)
                    return true
                }
                // A collection deleted meanwhile, or a bucket that stays unreachable.
                if shipped[waiter.collectionID] == nil || now - waiter.sinceMilliseconds >= timeoutMilliseconds {
                    expired.append(waiter.continuation)
                    return true
                }
                return false
            }
        }
        for continuation in released { continuation.resume() }
        for continuation in expired {
            continuation.resume(throwing: StorageError.unavailable(
                "the write is durable here but did not reach \(location) within \(timeoutMilliseconds) ms; it is not acknowledged"))
        }
    }
}
