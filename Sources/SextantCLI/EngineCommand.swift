import ArgumentParser
import Dispatch
import Foundation
import Logging
import SextantClient
import SextantConcurrency
import SextantEngine
import SextantReplication
import SextantStorage

#if canImport(Glibc)
import Glibc
#endif

/// Shared options of every command that keeps state: one data root for all.
struct DataOptions: ParsableArguments {
    @Option(help: "The data root: every component keeps its files in its own folder under it.")
    var data = "./sextant-data"

    var engineDirectory: String { data + "/engine" }
}

enum Secrets {
    /// Reads a secret from a file, trimmed; never logged.
    static func read(_ path: String?) throws -> String? {
        guard let path else { return nil }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ValidationError("cannot read \(path)")
        }
        let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else { throw ValidationError("\(path) is empty") }
        return token
    }
}

enum Logs {
    static func make(_ label: String) -> Logger {
        var logger = Logger(label: label) { StreamLogHandler.standardError(label: $0) }
        let level = ProcessInfo.processInfo.environment["SEXTANT_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:))
        logger.logLevel = level ?? .info
        return logger
    }
}

/// Waits for SIGTERM or SIGINT.
enum Signals {
    static func wait() async -> Int32 {
        await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
            let resumed = Mutex(false)
            var sources: [any DispatchSourceSignal] = []
            for number in [SIGTERM, SIGINT] {
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler {
                    let first = resumed.withLock { done -> Bool in
                        defer { done = true }
                        return !done
                    }
                    if first { continuation.resume(returning: number) }
                }
                source.resume()
                sources.append(source)
            }
            Signals.keep(sources)
        }
    }

    nonisolated(unsafe) private static var retained: [any DispatchSourceSignal] = []
    private static func keep(_ sources: [any DispatchSourceSignal]) { retained.append(contentsOf: sources) }
}

import Synchronization

struct EngineCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine", abstract: "Run the engine: the process that holds the collections.")

    @OptionGroup var data: DataOptions
    @Option(help: "TCP address to listen on (host:port), or 'none'.") var listen = "127.0.0.1:7700"
    @Option(help: "Also listen on this Unix socket.") var unix: String?
    @Option(name: .customLong("token-file"), help: "File holding the token clients must present (required beyond loopback).")
    var tokenFile: String?
    @Option(name: .customLong("indexer-threads"),
            help: "Background threads linking records into the index while no query runs (default: one per core; one while queries run).")
    var indexerThreads: Int?
    @Option(name: .customLong("event-loop-threads"), help: "Threads serving connections and answering queries (default: one per core).")
    var eventLoopThreads: Int?
    @Option(name: .customLong("max-frame-bytes"), help: "Largest frame accepted.")
    var maxFrameBytes = 64 << 20
    @Option(name: .customLong("unindexed-limit"),
            help: "Acknowledged-but-unindexed records per collection (queries scan them exactly; writers wait beyond).")
    var unindexedLimit = StorageLimits.unindexedTailCapacity
    @Option(name: .customLong("unindexed-limit-under-reads"),
            help: "The same bound while queries run (a query in the last \(StorageLimits.readerActivityWindowMilliseconds) ms); default: --unindexed-limit.")
    var unindexedLimitUnderReads: Int?
    @Option(name: .customLong("automatic-index-records"),
            help: "A collection this large indexes a metadata field by itself once \(StorageLimits.automaticPayloadIndexFilterUses) filters have used it without an index (0: never).")
    var automaticIndexRecords = StorageLimits.automaticPayloadIndexRecords
    @Option(name: .customLong("background-priority"),
            help: "Scheduling priority of write processing, indexing and checkpoint threads: a nice value 0-19 (default 10), or 'idle' (SCHED_IDLE: only CPU nothing else wants; under a saturating query load writes can then wait past their deadlines).")
    var backgroundPriority: String?
    @Flag(name: .customLong("reads-first"),
          help: "Queries first: while they run, writes wait for the indexer past \(StorageLimits.readsFirstUnindexedTail) unindexed records (--unindexed-limit-under-reads \(StorageLimits.readsFirstUnindexedTail)).")
    var readsFirst = false
    @Option(name: .customLong("tls-cert"), help: "PEM certificate chain: serve TLS 1.3 on the TCP listener (the Unix socket stays plain).")
    var tlsCert: String?
    @Option(name: .customLong("tls-key"), help: "PEM private key for --tls-cert.") var tlsKey: String?
    @Option(name: .customLong("read-timeout-ms"),
            help: "A connection's handshake, and any request frame once begun, must arrive whole within this (slow clients are closed).")
    var readTimeoutMilliseconds: Int64 = 10_000
    @Option(name: .customLong("stalled-write-timeout-ms"),
            help: "A connection that reads none of its responses for this long is closed (its requests stop being read at once).")
    var stalledWriteTimeoutMilliseconds: Int64 = 30_000
    @Flag(name: .customLong("insecure-plaintext"),
          help: "Listen beyond loopback without TLS (the token and records cross the network in clear); refused otherwise.")
    var insecurePlaintext = false
    @OptionGroup var backup: BackupLifecycleOptions
    @Option(name: .customLong("ship-to"),
            help: "s3://, gs:// or file:/// location: ship the log there as it is written (read replicas follow it) and keep snapshots there as --backup-to does; an empty data folder starts from them.")
    var shipTo: String?
    @Option(name: .customLong("follow"),
            help: "Be a read replica of the primary shipping to this location: start from its newest snapshot, apply its log as it arrives, refuse writes.")
    var follow: String?
    @Option(name: .customLong("ship-interval-ms"), help: "How often the log is shipped (--ship-to) or looked for (--follow).")
    var shipIntervalMilliseconds = 1_000
    @Option(name: .customLong("lease-seconds"),
            help: "With --ship-to: the term of the primary's lease on the location, renewed every third of it; a second primary waits out a lapsed one and refuses a live one.")
    var leaseSeconds = 15.0
    @Flag(name: .customLong("ack-after-ship"),
          help: "With --ship-to: acknowledge a write only once its log entry is in object storage (survives a lost volume; each write then waits for an upload).")
    var ackAfterShip = false

    func run() async throws {
        let logger = Logs.make("sextant.engine")
        var configuration = EngineConfiguration(dataDirectory: data.engineDirectory)
        if listen == "none" {
            configuration.host = nil
        } else {
            guard case .tcp(let host, let port) = try EngineAddress(parsing: listen) else {
                throw ValidationError("--listen takes host:port")
            }
            configuration.host = host
            configuration.port = port
        }
        configuration.unixSocketPath = unix
        configuration.token = try Secrets.read(tokenFile)
        configuration.tlsCertificatePath = tlsCert
        configuration.tlsKeyPath = tlsKey
        configuration.insecurePlaintext = insecurePlaintext
        guard readTimeoutMilliseconds >= 100, stalledWriteTimeoutMilliseconds >= 100 else {
            throw ValidationError("--read-timeout-ms and --stalled-write-timeout-ms must be at least 100")
        }
        configuration.frameReadTimeoutMilliseconds = readTimeoutMilliseconds
        configuration.stalledWriteTimeoutMilliseconds = stalledWriteTimeoutMilliseconds
        if let indexerThreads {
            guard (1...64).contains(indexerThreads) else { throw ValidationError("--indexer-threads must be in 1...64") }
            configuration.indexerThreads = indexerThreads
        }
        if let eventLoopThreads {
            guard (1...256).contains(eventLoopThreads) else { throw ValidationError("--event-loop-threads must be in 1...256") }
            configuration.eventLoopThreads = eventLoopThreads
        }
        configuration.maximumFrameBytes = maxFrameBytes
        let priority: BackgroundPriority
        if let backgroundPriority {
            guard let parsed = BackgroundPriority(parsing: backgroundPriority) else {
                throw ValidationError("--background-priority takes 'idle' or a nice value 0-19")
            }
            priority = parsed
        } else {
            priority = .default
        }
        guard unindexedLimit >= 64 else { throw ValidationError("--unindexed-limit must be at least 64") }
        let underReads = unindexedLimitUnderReads ?? (readsFirst ? StorageLimits.readsFirstUnindexedTail : unindexedLimit)
        guard underReads >= 64 else { throw ValidationError("--unindexed-limit-under-reads must be at least 64") }
        configuration.backgroundPriority = priority
        configuration.tailLimits = TailLimits(always: unindexedLimit, underReads: min(underReads, unindexedLimit))
        guard automaticIndexRecords >= 0 else { throw ValidationError("--automatic-index-records must be 0 or more") }
        configuration.automaticIndexRecords = automaticIndexRecords
        configuration.serverVersion = Runtime.version
        configuration.allocator = Runtime.allocator
        configuration.kernels = Runtime.kernels
        logger.notice("\(Runtime.startupLine)")
        guard shipTo == nil || follow == nil else { throw ValidationError("--ship-to and --follow exclude each other") }
        guard follow == nil || backup.backupTo == nil else {
            throw ValidationError("a read replica (--follow) takes no backups: its primary's --ship-to holds them")
        }
        if let shipTo, let backupTo = backup.backupTo, backupTo != shipTo {
            throw ValidationError("--ship-to keeps the snapshots too: give --backup-to the same location or leave it out")
        }
        guard (50...600_000).contains(shipIntervalMilliseconds) else { throw ValidationError("--ship-interval-ms must be in 50...600000") }
        guard (1...3_600).contains(leaseSeconds) else { throw ValidationError("--lease-seconds must be in 1...3600") }
        guard !ackAfterShip || shipTo != nil else { throw ValidationError("--ack-after-ship needs --ship-to") }
        let s3 = try backup.s3.settings()
        // One primary per location: the lease comes before anything is restored from it or shipped to it.
        let lease: PrimaryLease?
        do { lease = try await Replication.lease(shipTo: shipTo, s3: s3, termSeconds: leaseSeconds, logger: logger) } catch let error as ReplicationError {
            throw ValidationError(error.description)
        }
        // With --backup-to (or --ship-to), an empty data root (a fresh container) first gets the newest backup back.
        let backups = try await backup.start(dataRoot: data.data, logger: logger, location: shipTo)
        let replication = try await Replication.prepare(shipTo: shipTo, follow: follow, dataRoot: data.data,
                                                        s3: s3, backups: backups, lease: lease, acknowledgeAfterShipping: ackAfterShip,
                                                        logger: logger)
        replication?.configure(&configuration)
        let server: EngineServer
        do { server = try await EngineServer.start(configuration, logger: logger) } catch let error as EngineStartError {
            throw ValidationError(error.description)
        }
        for address in server.addresses { logger.notice("listening on \(address)") }
        logger.notice("data in \(configuration.dataDirectory); \(server.storage.list().count) collections open")
        let own = unix.map { "unix:" + $0 } ?? server.addresses.first.map { "\($0.ipAddress ?? "127.0.0.1"):\($0.port ?? 7700)" }
        let periodic = backups.flatMap { lifecycle in own.map { lifecycle.periodic(engine: $0, token: configuration.token) } }
        let replicating = replication?.run(storage: server.storage, intervalMilliseconds: shipIntervalMilliseconds)
        let signal = await Signals.wait()
        logger.notice("received signal \(signal)")
        periodic?.cancel()
        // Stop accepting and checkpoint first, then back up the closed files: the
        // backup holds every acknowledged write, and it is incremental, so it fits
        // the platform's shutdown grace period. Shipping (and the lease) run on
        // while writes drain: with --ack-after-ship they wait for it. A replica
        // stops following first, so that nothing applies to a closing collection.
        if replication?.role == .replica {
            replicating?.cancel()
            await replicating?.value
        }
        try await server.shutdown()
        replicating?.cancel()
        await replicating?.value
        await replication?.finish(storage: server.storage)
        if let backups { await backups.shutdownBackup(engine: nil, token: nil) }
        await replication?.release()
    }
}
