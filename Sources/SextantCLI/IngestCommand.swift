import ArgumentParser
import SextantConcurrency
import Foundation
import SextantClient
import SextantEmbedding
import SextantIngest
import SextantJSON
import SextantObjectStore
import SextantRemoteModels
import SextantSupport

/// S3 flags shared by ingest and backup; unset ones fall back to the AWS environment variables.
struct S3Options: ParsableArguments {
    @Option(name: .customLong("s3-endpoint"), help: "S3 endpoint URL (MinIO, R2, https://storage.googleapis.com); default AWS or $AWS_ENDPOINT_URL.")
    var endpoint: String?
    @Option(name: .customLong("s3-region"), help: "Region; default $AWS_REGION or us-east-1.") var region: String?
    @Option(name: .customLong("s3-access-key-file"), help: "File holding the access key id; default $AWS_ACCESS_KEY_ID.")
    var accessKeyFile: String?
    @Option(name: .customLong("s3-secret-key-file"), help: "File holding the secret key; default $AWS_SECRET_ACCESS_KEY.")
    var secretKeyFile: String?
    @Flag(name: .customLong("s3-virtual-hosted"), help: "Put the bucket in the host name instead of the path.")
    var virtualHosted = false

    func settings() throws -> S3Settings {
        S3Settings(endpoint: endpoint, region: region, accessKeyID: try Secrets.read(accessKeyFile),
                   secretAccessKey: try Secrets.read(secretKeyFile), pathStyle: virtualHosted ? false : nil)
    }
}

struct IngestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Ingest CSV batches from a folder, an S3 bucket or a URL: enrich, embed, upsert; once or on a schedule.",
        discussion: "The mapping file format is in docs/INGEST.md; tools/mappings/debian-minilm.json is an example.")

    @OptionGroup var data: DataOptions
    @OptionGroup var engine: EngineOptions
    @OptionGroup var s3: S3Options
    @Option(help: "Collection to write to (created on first use).") var collection: String?
    @Option(help: "A folder, s3://bucket/prefix, gs://bucket/prefix, or an http(s):// URL of one CSV file.") var source: String?
    @Option(name: .customLong("suggest-mapping"),
            help: "Print the mapping inferred for a CSV file (from its header and first rows) and exit; nothing is ingested.")
    var suggestMapping: String?
    @Option(help: "Cron schedule, e.g. \"0 */6 * * *\".") var schedule: String?
    @Option(help: "Run every interval, e.g. 6h, 30m.") var interval: String?
    @Flag(help: "Run once and exit (the default without --schedule or --interval).") var once = false
    @Option(help: "Mapping file (JSON); without one, a mapping is inferred per header and written to ROOT/ingest/mappings.") var mapping: String?
    @Option(help: "fvecs file with precomputed vectors, for a mapping with precomputed_vectors.") var vectors: String?
    @Option(help: "Embedder: builtin, openai:MODEL (OPENAI_API_KEY, OPENAI_BASE_URL), gemini:MODEL (GEMINI_API_KEY).")
    var embedder = "builtin"
    @Option(help: "LLM enrichment: gemini:MODEL adds a summary (GEMINI_API_KEY, GEMINI_BASE_URL).") var enrich: String?
    @Option(name: .customLong("enrich-budget"), help: "Most LLM requests per run (retries count).") var enrichBudget = 1_000
    @Option(name: .customLong("enrich-concurrency"), help: "LLM requests in flight at once.") var enrichConcurrency = 4
    @Option(name: .customLong("enrich-batch"), help: "Rows per LLM request.") var enrichBatch = 8
    @Option(help: "Rows per upsert (1...16384).") var batch = 1_000
    @Flag(name: .customLong("no-progress"), help: "Log a line per batch even on a terminal.") var noProgress = false
    @Flag(name: .customLong("no-text-index"), help: "Create the collection without its BM25 full-text index.")
    var noTextIndex = false
    @Flag(help: "Print the run summary as JSON.") var json = false

    func validate() throws {
        if suggestMapping == nil, collection == nil || source == nil {
            throw ValidationError("--collection and --source are required (unless --suggest-mapping)")
        }
        let chosen = [schedule != nil, interval != nil, once].filter { $0 }.count
        if chosen > 1 { throw ValidationError("choose one of --schedule, --interval, --once") }
    }

    /// Under `nice` (as `sextant up` starts it) the work runs at that niceness on every thread.
    func run() async throws {
        try await InheritedNiceness.run { try await work() }
    }

    private func work() async throws {
        if let suggestMapping {
            var reader = try CSVReader(path: suggestMapping)
            defer { reader.close() }
            guard let header = try reader.next(), header.problem == nil else { throw ValidationError("\(suggestMapping): no readable header") }
            var sample: [[String]] = []
            while sample.count < MappingInference.sampleRows, let record = try reader.next() {
                if record.problem == nil { sample.append(record.fields) }
            }
            do {
                let inferred = try MappingInference.infer(header: header.fields, sample: sample)
                for note in inferred.notes { FileHandle.standardError.write(Data("\(note)\n".utf8)) }
                print(JSON.serialize(inferred.mapping.json, pretty: true), terminator: "")
            } catch let error as IngestError { throw ValidationError(error.description) }
            return
        }
        guard let collection, let source else { throw ValidationError("--collection and --source are required") }
        let logger = Logs.make("sextant.ingest")
        let plan: Schedule
        do {
            if let schedule { plan = .cron(try CronExpression(schedule)) }
            else if let interval { plan = .interval(seconds: try Schedule.parseDuration(interval)) }
            else { plan = .once }
        } catch let error as ScheduleError { throw ValidationError(error.description) }

        var configuration = IngestConfiguration(collection: collection, dataRoot: data.data)
        configuration.batchRows = batch
        configuration.vectorsPath = vectors
        configuration.showProgress = !noProgress
        if noTextIndex { configuration.textIndex = nil }
        do {
            configuration.mapping = try mapping.map(Mapping.load)
        } catch let error as IngestError { throw ValidationError(error.description) }

        var remotePolicy = RemoteCallPolicy()
        remotePolicy.maximumConcurrentRequests = max(1, enrichConcurrency)
        let chosenEmbedder: (any Embedder)? = configuration.mapping?.precomputed == nil
            ? try await EmbedderFactory.make(embedder, registry: Embedders.registry(), policy: remotePolicy) : nil
        var enrichers: [any Enricher] = [CleanupEnricher(maximumCharacters: configuration.mapping?.maximumDocumentCharacters ?? 16_000)]
        if let keywords = configuration.mapping?.keywords, keywords > 0 { enrichers.append(KeywordEnricher(count: keywords)) }
        if let enrich {
            guard enrich.hasPrefix("gemini:") else { throw ValidationError("--enrich takes gemini:MODEL") }
            var policy = remotePolicy
            policy.budgetRequests = enrichBudget
            let generator = GeminiGenerator(endpoint: try GeminiEndpoint(), model: String(enrich.dropFirst(7)),
                                            client: RemoteJSONClient(policy: policy))
            enrichers.append(SummaryEnricher(generator: generator, batchRows: enrichBatch))
        }
        let client = try await engine.connect()
        let worker = try IngestWorker(client: client, source: try openSource(source, s3: try s3.settings()), embedder: chosenEmbedder,
                                      enrichers: enrichers, configuration: configuration, logger: logger)
        do {
            if case .once = plan {
                let summary = try await worker.runOnce()
                try printReport(summary, json: json) { "summary: \(summary.line)" }
                // A cron job notices a file that could not be ingested.
                if summary.filesFailed > 0 {
                    await client.close()
                    throw ExitCode(2)
                }
            } else {
                logger.notice("ingesting \(source) into \(collection) \(plan)")
                // SIGTERM / Ctrl-C cancels the run between batches' awaits; what
                // was acknowledged is in the ledger and the next start resumes.
                let work = Task { try await worker.run(schedule: plan) }
                Task.detached {
                    _ = await Signals.wait()
                    work.cancel()
                }
                try await work.value
            }
        } catch is CancellationError {
            logger.notice("stopped")
        } catch let error as IngestError {
            await client.close()
            throw ValidationError(error.description)
        }
        await client.close()
    }
}
