import ArgumentParser
import Foundation
import Logging
import SextantBackup
import SextantClient
import SextantIngest
import SextantObjectStore

/// `--backup-to` and its companions, shared by `sextant up` and `sextant engine`:
/// restore into an empty root, back up on an interval, back up on shutdown
/// within a deadline.
struct BackupLifecycleOptions: ParsableArguments {
    @OptionGroup var s3: S3Options
    @Option(name: .customLong("backup-to"), help: "s3://, gs:// or file:/// location: restore on an empty start, back up periodically and on shutdown.")
    var backupTo: String?
    @Option(name: .customLong("backup-every"), help: "Interval between backups (with --backup-to).") var backupEvery = "30m"
    @Option(name: .customLong("backup-keep"), help: "Backups to keep (with --backup-to).") var backupKeep = 10
    @Option(name: .customLong("shutdown-deadline"), help: "Seconds the shutdown backup may take (Cloud Run allows 10).")
    var shutdownDeadline = 8.0

    /// The service for `--backup-to` (nil without it), after restoring the newest
    /// backup into an empty data root (a fresh container).
    func prepare(dataRoot: String, logger: Logger) async throws -> BackupService? {
        guard let backupTo else { return nil }
        let service = BackupService(store: try ObjectStoreLocation.open(backupTo, settings: try s3.settings()), dataRoot: dataRoot,
                                    logger: logger)
        if !service.hasEngineData() {
            do {
                if try await service.list().isEmpty {
                    logger.notice("no backup in \(backupTo) yet; starting empty")
                } else {
                    _ = try await service.restore(id: nil)
                }
            } catch let error as BackupError {
                throw ValidationError("cannot restore from \(backupTo): \(error)")
            }
        }
        return service
    }

    /// Backs up through the engine's online snapshot every `--backup-every`, until cancelled.
    func periodic(_ service: BackupService, engine: String, token: String?, logger: Logger) throws -> Task<Void, Never> {
        let interval = try Schedule.parseDuration(backupEvery)
        let keep = backupKeep
        return Task {
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: UInt64(interval * 1e9))
                guard !Task.isCancelled else { return }
                do {
                    let client = try await SextantClient.connect(ClientConfiguration(address: try EngineAddress(parsing: engine), token: token))
                    _ = try await service.backup(client: client, keep: keep)
                    await client.close()
                } catch {
                    logger.error("periodic backup failed: \(error)")
                }
            }
        }
    }

    /// The shutdown backup, given up after `--shutdown-deadline` (the previous backup then stays the newest).
    /// `engine` nil: the engine is stopped and its checkpointed files are read as they are.
    func shutdownBackup(_ service: BackupService, engine: String?, token: String?, logger: Logger) async {
        let deadline = shutdownDeadline
        let keep = backupKeep
        let work = Task {
            guard let engine else { return try await service.backup(client: nil, keep: keep) }
            let client = try await SextantClient.connect(ClientConfiguration(address: try EngineAddress(parsing: engine), token: token))
            do {
                let report = try await service.backup(client: client, keep: keep)
                await client.close()
                return report
            } catch {
                await client.close()
                throw error
            }
        }
        let timer = Task {
            try await Task.sleep(nanoseconds: UInt64(deadline * 1e9))
            work.cancel()
        }
        do {
            let report = try await work.value
            logger.notice("shutdown backup \(report.id) done in \(String(format: "%.2f", report.seconds)) s")
        } catch {
            logger.error("shutdown backup did not finish within \(deadline) s: \(error); the previous backup stays the newest")
        }
        timer.cancel()
    }
}
