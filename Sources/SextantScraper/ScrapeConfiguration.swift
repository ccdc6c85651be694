import AsyncHTTPClient
import Foundation
import Synchronization
import Logging
import NIOCore
import SextantClient
import SextantEmbedding
import SextantRetrieval
import SextantSupport
import SextantPayload

/// An immutable compiled pattern; NSRegularExpression is documented thread-safe once built.
public final class URLPattern: @unchecked Sendable {
    public let text: String
    let expression: NSRegularExpression

    public init(_ text: String) throws(ScrapeError) {
        do { expression = try NSRegularExpression(pattern: text) } catch {
            throw .configuration("invalid regular expression '\(text)': \(error)")
        }
        self.text = text
    }

    public func matches(_ url: String) -> Bool {
        expression.firstMatch(in: url, range: NSRange(url.startIndex..., in: url)) != nil
    }
}

public struct ScrapeConfiguration: Sendable {
    public var collection: String
    public var site: SiteScope
    /// ROOT/scraper/state.sqlite holds validators, page hashes and run history.
    public var dataRoot: String
    /// Pages fetched per run at most; a run that stops here is incomplete (no page counts as missing).
    public var maximumPages = 10_000
    /// Only pages whose URL matches are indexed (others are still read for their links).
    public var include: URLPattern?
    /// Pages whose URL matches are never fetched.
    public var exclude: URLPattern?
    /// Pages in flight at once.
    public var concurrency = 4
    /// Least time between two requests to the site (robots.txt's Crawl-delay raises it, up to `maximumCrawlDelay`).
    public var delayMilliseconds = 250
    public var fetch = Fetcher.Limits()
    public var chunking: ChunkingPolicy
    /// Complete crawls in a row that must miss a page before its chunks go.
    public var missingCrawlsToRemove = 2
    /// Chunks kept per page; the rest of a huge page is dropped (and counted).
    public var maximumChunksPerPage = 500
    /// Texts per embedding call.
    public var embedBatchTexts = 64
    /// POSTed the update event as JSON after a run that changed something.
    public var notifyURL: String?
    /// BM25 over the chunks of a collection the scraper creates (nil: none).
    public var textIndex: TextIndexOptions? = TextIndexOptions()

    public static let concurrencyRange = 1...32
    public static let pagesRange = 1...1_000_000
    public static let maximumCrawlDelay = Duration.seconds(30)
    public static let maximumSitemaps = 50
    public static let maximumSitemapURLs = 50_000

    public init(collection: String, site: SiteScope, dataRoot: String) throws(ScrapeError) {
        self.collection = collection
        self.site = site
        self.dataRoot = dataRoot
        chunking = try ChunkingPolicy()
    }

    func validate() throws(ScrapeError) {
        guard Self.concurrencyRange.contains(concurrency) else { throw .configuration("concurrency must be 1...32") }
        guard Self.pagesRange.contains(maximumPages) else { throw .configuration("max pages must be 1...1000000") }
        guard delayMilliseconds >= 0, delayMilliseconds <= 60_000 else { throw .configuration("delay must be 0...60000 ms") }
        guard fetch.maximumPageBytes >= 1_024, fetch.maximumPageBytes <= 64 << 20 else {
            throw .configuration("max page size must be 1 KiB...64 MiB")
        }
        guard fetch.timeoutMilliseconds >= 100 else { throw .configuration("timeout must be at least 100 ms") }
        guard missingCrawlsToRemove >= 1 else { throw .configuration("missing crawls must be at least 1") }
    }

    var statePath: String { dataRoot + "/scraper/state.sqlite" }
}

/// What one run did.
public struct ScrapeSummary: Sendable, Codable, Equatable {
    public var runID = ""
    /// Pages that came back with content (HTTP 200).
    public var pagesFetched = 0
    /// Pages with nothing new: 304 Not Modified, or the same text as last time.
    public var pagesUnchanged = 0
    /// Of the unchanged, those answered 304 (cost: one conditional GET).
    public var pagesNotModified = 0
    /// Pages whose chunks changed (new pages included).
    public var pagesChanged = 0
    public var pagesNew = 0
    /// Pages whose chunks were deleted: 404/410, noindex, or missed by consecutive complete crawls.
    public var pagesRemoved = 0
    /// Timeouts, 5xx, connection errors: left as they were, tried again next run.
    public var pagesFailed = 0
    /// Links to pages that answered 404/410 and were never indexed (broken links on the site).
    public var pagesNotFound = 0
    /// Not fetched or not indexed: robots.txt, too large, not HTML, off-site redirect, not included.
    public var pagesSkipped = 0
    public var chunksUpserted = 0
    public var chunksDeleted = 0
    /// Whether the crawl reached every page it found (no page limit hit, robots.txt read).
    public var complete = false
    public var seconds = 0.0
    /// The update event published, when the run changed something.
    public var updateSequence: Int64?
    /// The first 50 failures and skips, for the log.
    public var problems: [String] = []

    public var changedAnything: Bool { chunksUpserted + chunksDeleted > 0 }

    public var line: String {
        "\(pagesFetched) fetched, \(pagesUnchanged) unchanged (\(pagesNotModified) not modified), \(pagesChanged) changed "
            + "(\(pagesNew) new), \(pagesRemoved) removed, \(pagesFailed) failed, \(pagesSkipped) skipped, \(pagesNotFound) not found; "
            + "\(chunksUpserted) chunks upserted, \(chunksDeleted) deleted; \(String(format: "%.2f", seconds)) s"
            + (complete ? "" : " (incomplete crawl)")
    }
}
