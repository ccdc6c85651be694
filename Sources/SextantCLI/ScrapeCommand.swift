import ArgumentParser
import SextantConcurrency
import Foundation
import SextantClient
import SextantRemoteModels
import SextantScraper
import SextantSupport

struct ScrapeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scrape",
        abstract: "Crawl a website and keep a collection in step with it: changed pages upserted, vanished ones deleted.",
        discussion: "docs/SCRAPER.md describes the crawl rules, chunk ids and the update event.")

    @OptionGroup var data: DataOptions
    @OptionGroup var engine: EngineOptions
    @Option(help: "Collection to keep current (created on first use).") var collection: String
    @Option(help: "The site: an http(s) URL; the crawl stays under its folder.") var site: String
    @Option(help: "Scrape every interval, e.g. 30m (the first run starts at once).") var interval: String?
    @Flag(help: "Scrape once and exit (the default without --interval).") var once = false
    @Option(name: .customLong("max-pages"), help: "Most pages fetched per run (a run that hits it removes nothing).") var maxPages = 10_000
    @Option(help: "Only pages whose URL matches this regular expression are indexed.") var include: String?
    @Option(help: "Pages whose URL matches this regular expression are never fetched.") var exclude: String?
    @Option(help: "Pages in flight at once (1...32).") var concurrency = 4
    @Option(name: .customLong("delay-ms"), help: "Least milliseconds between two requests to the site.") var delayMilliseconds = 250
    @Option(name: .customLong("timeout-ms"), help: "Per-request time limit in milliseconds.") var timeoutMilliseconds: Int64 = 15_000
    @Option(name: .customLong("max-page-bytes"), help: "Pages larger than this are skipped.") var maxPageBytes = 4 << 20
    @Option(name: .customLong("chunk-characters"), help: "Largest chunk body in characters.") var chunkCharacters = 1_000
    @Option(name: .customLong("chunk-overlap"), help: "Characters repeated between neighbouring chunks.") var chunkOverlap = 150
    @Option(help: "Embedder: builtin, sextant-hash, openai:MODEL, gemini:MODEL.") var embedder = "builtin"
    @Option(help: "POST each update event as JSON to this URL (besides recording it in the collection).") var notify: String?
    @Flag(name: .customLong("skip-first-if-populated"), help: "With --interval: a collection that has records waits one interval first.")
    var skipFirstIfPopulated = false
    @Flag(help: "Print the run summary as JSON.") var json = false
    @Flag(name: .customLong("no-text-index"), help: "Create the collection without its BM25 full-text index.")
    var noTextIndex = false

    func validate() throws {
        if once && interval != nil { throw ValidationError("choose one of --interval and --once") }
    }

    /// Under `nice` (as `sextant up` starts it) the work runs at that niceness on every thread.
    func run() async throws {
        try await InheritedNiceness.run { try await work() }
    }

    private func work() async throws {
        let logger = Logs.make("sextant.scrape")
        let intervalSeconds: Double?
        do { intervalSeconds = try interval.map(Schedule.parseDuration) } catch let error as ScheduleError {
            throw ValidationError(error.description)
        }
        var configuration: ScrapeConfiguration
        do {
            configuration = try ScrapeConfiguration(collection: collection, site: try SiteScope(site), dataRoot: data.data)
            configuration.maximumPages = maxPages
            if noTextIndex { configuration.textIndex = nil }
            configuration.include = try include.map(URLPattern.init)
            configuration.exclude = try exclude.map(URLPattern.init)
            configuration.concurrency = concurrency
            configuration.delayMilliseconds = delayMilliseconds
            configuration.fetch.timeoutMilliseconds = timeoutMilliseconds
            configuration.fetch.maximumPageBytes = maxPageBytes
            configuration.chunking = try ChunkingPolicy(maximumCharacters: chunkCharacters, overlapCharacters: chunkOverlap)
            configuration.notifyURL = notify
        } catch { throw ValidationError(error.description) }
        let chosen = try await EmbedderFactory.make(embedder, registry: Embedders.registry(), policy: RemoteCallPolicy())
        let client = try await engine.connect()
        let scraper: Scraper
        do { scraper = try Scraper(client: client, embedder: chosen, configuration: configuration, logger: logger) } catch let error as ScrapeError {
            await client.close()
            throw ValidationError(error.description)
        }
        if let intervalSeconds {
            logger.notice("scraping \(configuration.site.root) into \(collection) every \(Int(intervalSeconds)) s")
            let work = Task { try await scraper.run(intervalSeconds: intervalSeconds, skipFirstIfPopulated: skipFirstIfPopulated) }
            Task.detached {
                _ = await Signals.wait()
                work.cancel()
            }
            do { try await work.value } catch is CancellationError { logger.notice("stopped") }
        } else {
            do {
                let summary = try await scraper.runOnce()
                try printReport(summary, json: json) { "summary: \(summary.line)" }
            } catch let error as ScrapeError { throw ValidationError(error.description) }
        }
        await client.close()
    }
}
