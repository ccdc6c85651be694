import ArgumentParser
import Foundation
import SextantBackup
import SextantClient
import SextantObjectStore

struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup", abstract: "Back up the whole data root (engine snapshot + SQLite files) to s3://, gs:// or file:///.")

    @OptionGroup var data: DataOptions
    @OptionGroup var engine: EngineOptions
    @OptionGroup var s3: S3Options
    @Option(help: "Where: s3://bucket/prefix, gs://bucket/prefix or file:///path.") var to: String
    @Option(help: "Keep the newest N backups; delete older ones and blobs no backup needs.") var keep: Int?
    @Flag(help: "The engine is stopped: read its files directly instead of asking it for a snapshot.") var offline = false
    @Flag(help: "Print the report as JSON.") var json = false

    func run() async throws {
        let logger = Logs.make("sextant.backup")
        let service = BackupService(store: try ObjectStoreLocation.open(to, settings: try s3.settings()), dataRoot: data.data, logger: logger)
        let client = offline ? nil : try await engine.connect()
        do {
            let report = try await service.backup(client: client, keep: keep)
            await client?.close()
            try printReport(report, json: json) {
                "backup \(report.id): \(report.files) files, \(report.totalBytes) bytes, \(report.uploadedBytes) uploaded, \(report.records) records, \(String(format: "%.2f", report.seconds)) s"
            }
        } catch let error as BackupError {
            await client?.close()
            throw ValidationError(error.description)
        }
    }
}

struct RestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore", abstract: "Restore a backup into an empty data root (every checksum verified first).")

    @OptionGroup var data: DataOptions
    @OptionGroup var s3: S3Options
    @Option(help: "Where the backups are.") var from: String
    @Option(help: "The backup id (default: the newest).") var backup: String?
    @Flag(help: "Replace the engine data already in the data root.") var replace = false
    @Flag(help: "Print the report as JSON.") var json = false

    func run() async throws {
        let logger = Logs.make("sextant.restore")
        let service = BackupService(store: try ObjectStoreLocation.open(from, settings: try s3.settings()), dataRoot: data.data, logger: logger)
        do {
            let report = try await service.restore(id: backup, replace: replace)
            try printReport(report, json: json) {
                "restored \(report.id): \(report.files) files, \(report.totalBytes) bytes, \(report.records) records, \(String(format: "%.2f", report.seconds)) s"
            }
        } catch let error as BackupError { throw ValidationError(error.description) }
    }
}

struct BackupsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "backups", abstract: "List the complete backups at a location, newest first.")

    @OptionGroup var s3: S3Options
    @Option(help: "Where the backups are.") var from: String
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let service = BackupService(store: try ObjectStoreLocation.open(from, settings: try s3.settings()), dataRoot: "/nonexistent",
                                    logger: Logs.make("sextant.backups"))
        let manifests = try await service.list()
        if json { return try printReport(manifests, json: true) { "" } }
        print("id                              created (UTC)         size bytes   records  files")
        for manifest in manifests {
            let created = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: manifest.createdAtSeconds))
            print("\(manifest.id.padding(toLength: 32, withPad: " ", startingAt: 0))\(created)  \(String(manifest.totalBytes).leftPadded(11))  \(String(manifest.records).leftPadded(8))  \(manifest.files.count)")
        }
    }
}

func printReport<T: Encodable>(_ report: T, json: Bool, text: () -> String) throws {
    if json {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(report), as: UTF8.self))
    } else {
        print(text())
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
