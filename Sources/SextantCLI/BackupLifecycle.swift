import ArgumentParser
import Logging
import SextantBackup
import SextantObjectStore
import SextantSupport

/// `--backup-to` and its companions, shared by `sextant up` and `sextant engine`
/// (the policy itself is `SextantBackup.BackupLifecycle`).
struct BackupLifecycleOptions: ParsableArguments {
    @OptionGroup var s3: S3Options
    @Option(name: .customLong("backup-to"), help: "s3://, gs:// or file:/// location: restore on an empty start, back up periodically and on shutdown.")
    var backupTo: String?
    @Option(name: .customLong("backup-every"), help: "Interval between backups (with --backup-to).") var backupEvery = "30m"
    @Option(name: .customLong("backup-keep"), help: "Backups to keep (with --backup-to).") var backupKeep = 10
    @Option(name: .customLong("shutdown-deadline"), help: "Seconds the shutdown backup may take (Cloud Run allows 10).")
    var shutdownDeadlineSeconds = 8.0

    /// The lifecycle for `--backup-to` (nil without it), after restoring the newest
    /// backup into an empty data root.
    /// `location` overrides `--backup-to` (`sextant engine --ship-to` keeps its snapshots there).
    func start(dataRoot: String, logger: Logger, location: String? = nil) async throws -> BackupLifecycle? {
        guard let backupTo = location ?? backupTo else { return nil }
        let interval: Double
        do { interval = try Schedule.parseDuration(backupEvery) } catch { throw ValidationError("--backup-every: \(error)") }
        guard backupKeep >= 1 else { throw ValidationError("--backup-keep must be at least 1") }
        guard shutdownDeadlineSeconds > 0 else { throw ValidationError("--shutdown-deadline must be positive") }
        let service = BackupService(store: try ObjectStoreLocation.open(backupTo, settings: try s3.settings()), dataRoot: dataRoot,
                                    logger: logger)
        do {
            return try await BackupLifecycle.start(service: service, intervalSeconds: interval, keep: backupKeep,
                                                   shutdownDeadlineSeconds: shutdownDeadlineSeconds, logger: logger)
        } catch let error as BackupError {
            throw ValidationError("cannot restore from \(backupTo): \(error)")
        }
    }
}
