import Logging
import SextantBackup
import SextantEngine
import SextantObjectStore
import SextantReplication
import SextantStorage

/// `sextant engine --ship-to` and `--follow`: which side of the shipped log
/// this engine is, and the tasks that keep it moving.
struct Replication: Sendable {
    enum Role: Sendable { case primary, replica }
    let role: Role
    let store: any ObjectStore
    let backups: BackupLifecycle?
    /// A primary's lease on its location, taken before anything is restored or shipped.
    let lease: PrimaryLease?
    /// `--ack-after-ship`: writes waiting for their entry to be in object storage.
    let positions: ShippedPositions?
    let logger: Logger

    /// `--ship-to`: the lease, taken now (waiting out one left by a dead primary).
    static func lease(shipTo: String?, s3: S3Settings, termSeconds: Double, logger: Logger) async throws -> PrimaryLease? {
        guard let shipTo else { return nil }
        let lease = PrimaryLease(store: try ObjectStoreLocation.open(shipTo, settings: s3), holder: PrimaryLease.processHolder(),
                                 termSeconds: termSeconds, logger: logger)
        try await lease.acquire()
        return lease
    }

    /// A replica with an empty data folder first restores the newest snapshot
    /// (as a primary with `--ship-to` already did through its backup lifecycle).
    static func prepare(shipTo: String?, follow: String?, dataRoot: String, s3: S3Settings, backups: BackupLifecycle?,
                        lease: PrimaryLease?, acknowledgeAfterShipping: Bool = false, logger: Logger) async throws -> Replication? {
        if let shipTo {
            let store = try ObjectStoreLocation.open(shipTo, settings: s3)
            return Replication(role: .primary, store: store, backups: backups, lease: lease,
                               positions: acknowledgeAfterShipping ? ShippedPositions(location: store.displayName) : nil, logger: logger)
        }
        guard let follow else { return nil }
        let store = try ObjectStoreLocation.open(follow, settings: s3)
        let service = BackupService(store: store, dataRoot: dataRoot, logger: logger)
        if !service.hasEngineData() {
            if try await service.list().isEmpty {
                logger.notice("no snapshot in \(store.displayName) yet; following its log from an empty start")
            } else {
                let report = try await service.restore(id: nil)
                logger.notice("restored snapshot \(report.id) (\(report.records) records) from \(store.displayName)")
            }
        }
        return Replication(role: .replica, store: store, backups: nil, lease: nil, positions: nil, logger: logger)
    }

    /// Before the engine listens, it applies what was shipped after its
    /// snapshot: a primary so that new writes follow the shipped ones, a
    /// replica so that it starts current.
    func configure(_ configuration: inout EngineConfiguration) {
        let (store, logger, isReplica) = (store, logger, role == .replica)
        if isReplica { configuration.readReplicaOf = store.displayName }
        if let positions {
            configuration.acknowledgementGate = { collection, lsn in try await positions.waitShipped(collection, lsn) }
        }
        if let lease {
            configuration.writeGate = {
                lease.isValid ? nil : "this primary does not hold its lease on \(store.displayName) (another primary may): it acknowledges no writes"
            }
        }
        configuration.beforeListening = { storage in
            let applied = try await LogFollower(storage: storage, store: store, logger: logger, replica: isReplica).followOnce()
            if applied > 0 { logger.notice("applied \(applied) log entries shipped to \(store.displayName)") }
        }
    }

    func run(storage: StorageEngine, intervalMilliseconds: Int) -> Task<Void, Never> {
        switch role {
        case .primary:
            let lease = self.lease
            let shipper = LogShipper(storage: storage, store: store, logger: logger, retainedSnapshotLSNs: retainedSnapshotLSNs,
                                     mayShip: { lease?.isValid ?? true })
            logger.notice("shipping the log to \(store.displayName) every \(intervalMilliseconds) ms")
            return Task {
                await withTaskGroup(of: Void.self) { group in
                    group.addTask { [positions] in await shipper.run(intervalMilliseconds: intervalMilliseconds, positions: positions) }
                    if let lease { group.addTask { await lease.run() } }
                }
            }
        case .replica:
            let follower = LogFollower(storage: storage, store: store, logger: logger)
            logger.notice("following the log shipped to \(store.displayName) every \(intervalMilliseconds) ms")
            return Task { await follower.run(intervalMilliseconds: intervalMilliseconds) }
        }
    }

    /// After the engine stopped taking writes: ship the last of the log.
    func finish(storage: StorageEngine) async {
        guard role == .primary else { return }
        do {
            let lease = self.lease
            let shipped = try await LogShipper(storage: storage, store: store, logger: logger, mayShip: { lease?.isValid ?? true }).shipOnce()
            logger.notice("shipped the last \(shipped) log entries to \(store.displayName)")
        } catch {
            logger.error("the last log entries were not shipped to \(store.displayName): \(error); they are in the local WAL and the shutdown snapshot")
        }
    }

    /// After the shutdown snapshot: the next primary need not wait for the lease to lapse.
    func release() async { await lease?.release() }

    /// For each collection every kept snapshot holds, the oldest one's LSN: the
    /// shipped log before it is needed by no one who starts from a snapshot.
    private var retainedSnapshotLSNs: @Sendable () async throws -> [String: LSN] {
        let service = backups?.service
        return {
            guard let service else { return [:] }
            let manifests = try await service.list()
            guard let first = manifests.first else { return [:] }
            var oldest: [String: LSN] = Dictionary(first.collections.map { ($0.id, $0.lsn) }, uniquingKeysWith: { a, _ in a })
            for manifest in manifests.dropFirst() {
                let here = Dictionary(manifest.collections.map { ($0.id, $0.lsn) }, uniquingKeysWith: { a, _ in a })
                var kept: [String: LSN] = [:]
                for (id, lsn) in oldest { if let other = here[id] { kept[id] = min(lsn, other) } }
                oldest = kept
            }
            return oldest
        }
    }
}
