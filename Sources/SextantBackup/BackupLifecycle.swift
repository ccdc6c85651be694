import Foundation
import Logging
import SextantClient
import SextantSupport

/// The backup life of a running service (`sextant up`, `sextant engine` with
/// `--backup-to`): restore into an empty data root on start (a fresh
/// container), back up on an interval, and back up once more on shutdown
/// within a deadline (Cloud Run allows 10 s after SIGTERM).
public struct BackupLifecycle: Sendable {
    public let service: BackupService
    public let intervalSeconds: Double
    public let keep: Int
    public let shutdownDeadlineSeconds: Double
    let logger: Logger

    /// The service for a location, after restoring its newest backup into an
    /// empty data root. An unreadable location fails here, before anything starts.
    public static func start(service: BackupService, intervalSeconds: Double, keep: Int, shutdownDeadlineSeconds: Double,
                             logger: Logger) async throws -> BackupLifecycle {
        precondition(intervalSeconds > 0 && keep >= 1 && shutdownDeadlineSeconds > 0, "validated by the command line")
        if !service.hasEngineData() {
            if try await service.list().isEmpty {
                logger.notice("no backup in \(service.store.displayName) yet; starting empty")
            } else {
                _ = try await service.restore(id: nil)
            }
        }
        return BackupLifecycle(service: service, intervalSeconds: intervalSeconds, keep: keep,
                               shutdownDeadlineSeconds: shutdownDeadlineSeconds, logger: logger)
    }

    /// Backs up through the engine's online snapshot every interval, until cancelled.
    public func periodic(engine: String, token: String?) -> Task<Void, Never> {
        let (service, interval, keep, logger) = (service, intervalSeconds, keep, logger)
        return Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(interval))
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

    /// The shutdown backup, given up after the deadline (the previous backup then
    /// stays the newest). `engine` nil: the engine is stopped and its
    /// checkpointed files are read as they are.
    public func shutdownBackup(engine: String?, token: String?) async {
        let (service, keep, deadline) = (service, keep, shutdownDeadlineSeconds)
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
            try await Task.sleep(for: .seconds(deadline))
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
