import Foundation
import Logging
import SextantObjectStore
import SextantReplication
import SextantTestSupport
import Testing

private let quiet = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }

/// One writer per location: the lease taken by a conditional write, renewed,
/// waited out when its holder died, refused while its holder lives.
@Suite struct PrimaryLeaseTests {
    @Test func aLiveHolderKeepsTheLeaseAndADeadOnesLapses() async throws {
        let directory = TemporaryDirectory("sextant-lease")
        defer { directory.remove() }
        let store = try FolderStore(root: directory.path)
        let first = PrimaryLease(store: store, holder: "first", termSeconds: 1.5, logger: quiet)
        try await first.acquire()
        #expect(first.isValid)
        let renewing = Task { await first.run() }

        // A second primary waits out the term, sees the holder renewed, and refuses.
        let second = PrimaryLease(store: store, holder: "second", termSeconds: 1.5, logger: quiet)
        await #expect(throws: ReplicationError.self) { try await second.acquire() }
        #expect(!second.isValid)
        #expect(first.isValid)

        // The first dies (no more renewals): a third takes over once its term lapsed.
        renewing.cancel()
        await renewing.value
        let third = PrimaryLease(store: store, holder: "third", termSeconds: 1.5, logger: quiet)
        try await third.acquire()
        #expect(third.isValid)
        // The first's writes stop before the third could take over, and its renewal now fails for good.
        #expect(!first.isValid)
        await #expect(throws: ObjectStoreError.self) { try await first.renew() }

        // A clean release lets the next primary in at once.
        await third.release()
        #expect(!third.isValid)
        let fourth = PrimaryLease(store: store, holder: "fourth", termSeconds: 60, logger: quiet)
        let started = ContinuousClock.now
        try await fourth.acquire()
        #expect(ContinuousClock.now - started < .seconds(30))
    }
}
