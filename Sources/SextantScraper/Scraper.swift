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

/// `sextant scrape`: crawls one site, keeps one collection in step with it
/// (changed pages' chunks replaced, vanished pages' chunks deleted, unchanged
/// pages left alone), and publishes an update event when anything changed.
public final class Scraper: Sendable {
    let client: SextantClient
    let embedder: any Embedder
    let configuration: ScrapeConfiguration
    let state: ScrapeState
    let logger: Logger

    public init(client: SextantClient, embedder: any Embedder, configuration: ScrapeConfiguration, logger: Logger) throws {
        try configuration.validate()
        self.client = client
        self.embedder = embedder
        self.configuration = configuration
        self.logger = logger
        state = try ScrapeState(path: configuration.statePath)
    }

    /// Runs every `intervalSeconds` (nil: once). With `skipFirstIfPopulated`, a
    /// collection that already has records waits one interval before the first run.
    public func run(intervalSeconds: Double?, skipFirstIfPopulated: Bool = false) async throws {
        if skipFirstIfPopulated, let intervalSeconds, try await existingCount() > 0 {
            logger.notice("collection \(configuration.collection) has records; first scrape in \(Int(intervalSeconds)) s")
            try await Task.sleep(nanoseconds: UInt64(intervalSeconds * 1e9))
        }
        while true {
            do {
                let summary = try await runOnce()
                logger.notice("scrape finished: \(summary.line)")
            } catch let error as ScrapeError {
                // The site or engine being down is not a reason to stop the schedule.
                logger.error("scrape failed: \(error)")
            }
            guard let intervalSeconds else { return }
            logger.notice("next scrape at \(ISO8601DateFormatter().string(from: Date().addingTimeInterval(intervalSeconds)))")
            try await Task.sleep(nanoseconds: UInt64(intervalSeconds * 1e9))
        }
    }

    func existingCount() async throws -> Int {
        do { return try await client.getCollection(name: configuration.collection).count() } catch let error as SextantError
            where error.code == .notFound { return 0 }
    }

    // MARK: - One run

    /// What processing one page produced, for the crawl loop.
    struct PageResult: Sendable {
        enum Kind: Sendable { case new, changed, unchanged, notModified, removed, gone, failed, skipped }
        var url: String
        var finalURL: String
        var kind: Kind
        var links: [String] = []
        var upserted = 0
        var deleted = 0
        var fetched = false
        var problem: String?
    }

    public func runOnce() async throws -> ScrapeSummary {
        let clock = ContinuousClock.now
        let stamp = ISO8601DateFormatter().string(from: Date()).replacingOccurrences(of: ":", with: "")
        var summary = ScrapeSummary()
        summary.runID = "scrape-\(stamp)-\(UUID().uuidString.prefix(8).lowercased())"
        let runNumber = try state.beginRun(runID: summary.runID, collection: configuration.collection, site: configuration.site.root)
        let fetcher = Fetcher(limits: configuration.fetch, delay: .milliseconds(configuration.delayMilliseconds))
        let handle: CollectionHandle
        do { handle = try await EmbedderBinding.open(
            client: client, name: configuration.collection, embedder: embedder.descriptor, textIndex: configuration.textIndex) }
        catch {
            await fetcher.shutdown()
            throw ScrapeError.engine("\(error)")
        }
        // A collection with records but no scrape state (state lost, or filled by
        // another writer first): ask the engine which chunks each page has.
        let orphanLookup: Bool
        do { orphanLookup = try await handle.count() > 0 && state.isEmpty(collection: configuration.collection) } catch {
            await fetcher.shutdown()
            throw ScrapeError.engine("\(error)")
        }

        let robots = await readRobots(fetcher)
        var complete = robots.complete
        if let delay = robots.policy.crawlDelaySeconds {
            await fetcher.gate.raise(to: min(.milliseconds(Int64(delay * 1_000)), ScrapeConfiguration.maximumCrawlDelay))
        }
        let allowed: @Sendable (String) -> Bool = { [configuration] url in
            configuration.site.contains(url) && robots.policy.allows(url: url) && !(configuration.exclude?.matches(url) ?? false)
        }

        var seeds = [configuration.site.root]
        seeds += await readSitemaps(fetcher, robots: robots.policy).filter(allowed)
        let seen = URLClaims()
        var queue: [String] = []
        var head = 0
        var skippedByRules = 0
        func enqueue(_ url: String) {
            guard seen.claim(url) else { return }
            // Other sites' links are not ours to count; our own pages that robots.txt or --exclude rule out are.
            guard configuration.site.contains(url) else { return }
            if allowed(url) { queue.append(url) } else { skippedByRules += 1 }
        }
        for seed in seeds { enqueue(seed) }

        var started = 0
        var touched: [String] = []
        await withTaskGroup(of: PageResult.self) { group in
            var inFlight = 0
            while true {
                while inFlight < configuration.concurrency, head < queue.count {
                    guard started < configuration.maximumPages else {
                        complete = false
                        head = queue.count
                        break
                    }
                    let url = queue[head]
                    head += 1
                    started += 1
                    inFlight += 1
                    group.addTask { await self.process(url, fetcher: fetcher, handle: handle, run: runNumber, orphanLookup: orphanLookup,
                                                       allowed: allowed, seen: seen) }
                }
                guard let result = await group.next() else { break }
                inFlight -= 1
                if result.fetched { summary.pagesFetched += 1 }
                switch result.kind {
                case .new: summary.pagesNew += 1; summary.pagesChanged += 1
                case .changed: summary.pagesChanged += 1
                case .unchanged: summary.pagesUnchanged += 1; touched.append(result.finalURL)
                case .notModified: summary.pagesUnchanged += 1; summary.pagesNotModified += 1; touched.append(result.finalURL)
                case .removed: summary.pagesRemoved += 1
                case .gone: summary.pagesNotFound += 1
                case .failed:
                    summary.pagesFailed += 1
                    // A page we could not read may still exist: do not let this crawl count it as missing.
                    touched.append(result.finalURL)
                case .skipped: summary.pagesSkipped += 1
                }
                if let problem = result.problem, summary.problems.count < 50 { summary.problems.append(problem) }
                summary.chunksUpserted += result.upserted
                summary.chunksDeleted += result.deleted
                for link in result.links { enqueue(link) }
                if started % 100 == 0 && inFlight == configuration.concurrency - 1 {
                    logger.info("scrape: \(started) pages started, \(queue.count - head) queued")
                }
            }
        }
        await fetcher.shutdown()
        summary.pagesSkipped += skippedByRules
        try state.touch(collection: configuration.collection, urls: touched, run: runNumber)

        // Pages no longer linked from anywhere: only a complete crawl may say so.
        if complete {
            for page in try state.countMisses(collection: configuration.collection, run: runNumber,
                                              threshold: configuration.missingCrawlsToRemove) {
                summary.chunksDeleted += try await removeChunks(of: page.url, known: page.chunkIDs, handle: handle)
                try state.remove(collection: configuration.collection, url: page.url)
                summary.pagesRemoved += 1
                logger.info("removed \(page.url): missing from \(page.missingCrawls) complete crawls")
            }
        }
        summary.complete = complete
        summary.seconds = (ContinuousClock.now - clock).seconds
        if summary.changedAnything {
            let event = try await handle.publishUpdate(
                runID: summary.runID, source: "scrape",
                counts: ["pages_changed": summary.pagesChanged, "pages_removed": summary.pagesRemoved,
                         "chunks_upserted": summary.chunksUpserted, "chunks_deleted": summary.chunksDeleted])
            summary.updateSequence = event.sequence
            if let notifyURL = configuration.notifyURL { await notify(notifyURL, event) }
        }
        try state.finishRun(runNumber, complete: complete, summary: summary)
        return summary
    }

    // MARK: - Robots and sitemaps

    struct Robots: Sendable {
        var policy: RobotsPolicy
        /// False when robots.txt could not be read: nothing is fetched and nothing counts as missing.
        var complete: Bool
    }

    func readRobots(_ fetcher: Fetcher) async -> Robots {
        let url = configuration.site.origin + "/robots.txt"
        switch await fetcher.get(url, accept: "text/plain", allowed: { $0.hasPrefix(self.configuration.site.origin) }) {
        case .page(_, let body, _, _, _):
            return Robots(policy: RobotsPolicy(parsing: String(decoding: body.prefix(RobotsPolicy.maximumBytes), as: UTF8.self),
                                               userAgent: Fetcher.robotsToken), complete: true)
        case .gone, .skipped, .tooLarge, .notModified:
            return Robots(policy: .allowAll, complete: true)
        case .failed(let reason):
            // RFC 9309: an unreachable robots.txt means assume everything is disallowed.
            logger.warning("robots.txt unreachable (\(reason)); crawling nothing this run")
            return Robots(policy: .disallowAll, complete: false)
        }
    }

    /// URLs from /sitemap.xml and the robots.txt Sitemap lines, following sitemap indexes.
    func readSitemaps(_ fetcher: Fetcher, robots: RobotsPolicy) async -> [String] {
        var pending = robots.sitemaps.compactMap { CanonicalURL.canonical($0) }.filter { $0.hasPrefix(configuration.site.origin) }
        pending.append(configuration.site.origin + "/sitemap.xml")
        if configuration.site.root != configuration.site.origin + "/" {
            pending.append((configuration.site.root.hasSuffix("/") ? configuration.site.root : configuration.site.root + "/") + "sitemap.xml")
        }
        var visited = Set<String>()
        var urls: [String] = []
        while let next = pending.first, visited.count < ScrapeConfiguration.maximumSitemaps {
            pending.removeFirst()
            guard visited.insert(next).inserted else { continue }
            guard case .page(_, let body, _, _, _) = await fetcher.get(next, accept: "application/xml,text/xml",
                                                                       allowed: { $0.hasPrefix(self.configuration.site.origin) })
            else { continue }
            let text = String(decoding: body, as: UTF8.self)
            // The protocol wants absolute URLs; relative ones are read against the sitemap's own URL.
            let locations = Sitemap.locations(text).compactMap { CanonicalURL.canonical($0, relativeTo: next) }
            if text.contains("<sitemapindex") {
                pending += locations.filter { $0.hasPrefix(configuration.site.origin) }
            } else {
                urls += locations.prefix(ScrapeConfiguration.maximumSitemapURLs - urls.count)
            }
        }
        if !urls.isEmpty { logger.info("sitemaps list \(urls.count) URLs") }
        return urls.compactMap { CanonicalURL.canonical($0) }
    }

    // MARK: - One page

    func process(_ url: String, fetcher: Fetcher, handle: CollectionHandle, run: Int64, orphanLookup: Bool,
                 allowed: @escaping @Sendable (String) -> Bool, seen: URLClaims) async -> PageResult {
        let collection = configuration.collection
        let known = try? state.page(collection: collection, url: url)
        // A redirect is followed only onto a page of the site that this run has not
        // taken on yet: a page reached by two URLs is fetched and indexed once.
        let outcome = await fetcher.get(url, etag: known?.etag, lastModified: known?.lastModified,
                                        allowed: { target in allowed(target) && seen.claim(target) })
        var result = PageResult(url: url, finalURL: url, kind: .failed)
        do {
            switch outcome {
            case .notModified:
                result.kind = .notModified
                result.links = known?.links ?? []
            case .gone(let status):
                result.kind = .gone
                if known != nil || orphanLookup {
                    result.deleted = try await removeChunks(of: url, known: known?.chunkIDs, handle: handle)
                    try state.remove(collection: collection, url: url)
                    if known != nil { result.kind = .removed }
                }
                if result.kind == .removed { result.problem = "\(url): HTTP \(status), removed" }
            case .tooLarge(let bytes):
                result.kind = .skipped
                result.problem = "\(url): larger than \(configuration.fetch.maximumPageBytes) bytes (\(bytes)+)"
                result.links = known?.links ?? []
            case .skipped(let reason):
                result.kind = .skipped
                result.problem = "\(url): \(reason)"
            case .failed(let reason):
                result.kind = .failed
                result.problem = reason
                result.links = known?.links ?? []
            case .page(let finalURL, let body, let contentType, let etag, let lastModified):
                result.fetched = true
                result.finalURL = finalURL
                let known = finalURL == url ? known : try state.page(collection: collection, url: finalURL)
                try await index(page: body, contentType: contentType, url: finalURL, etag: etag, lastModified: lastModified,
                                known: known, handle: handle, run: run, orphanLookup: orphanLookup, result: &result)
            }
        } catch {
            result.kind = .failed
            result.problem = "\(url): \(error)"
        }
        return result
    }

    func index(page body: [UInt8], contentType: String?, url: String, etag: String?, lastModified: String?, known: ScrapeState.Page?,
               handle: CollectionHandle, run: Int64, orphanLookup: Bool, result: inout PageResult) async throws {
        let page = HTMLText.extract(HTMLDecoding.decode(body, contentType: contentType))
        let base = page.baseHref.flatMap { CanonicalURL.canonical($0, relativeTo: url) } ?? url
        let links = page.noFollow ? [] : Array(Set(page.links.compactMap { CanonicalURL.canonical($0, relativeTo: base) })).sorted()
        result.links = links
        var canonicalElsewhere = false
        if let canonical = page.canonical.flatMap({ CanonicalURL.canonical($0, relativeTo: url) }), canonical != url,
           configuration.site.contains(canonical) {
            // The page names another URL as the one to index: follow it, index that.
            result.links.append(canonical)
            canonicalElsewhere = true
        }
        let indexable = !page.noIndex && !canonicalElsewhere && (configuration.include?.matches(url) ?? true)
        guard indexable else {
            result.kind = .skipped
            if known != nil {
                result.deleted = try await removeChunks(of: url, known: known?.chunkIDs, handle: handle)
                try state.remove(collection: configuration.collection, url: url)
                result.kind = .removed
            }
            return
        }
        var chunks = Chunker.chunks(page, policy: configuration.chunking)
        if chunks.count > configuration.maximumChunksPerPage {
            result.problem = "\(url): \(chunks.count) chunks, kept the first \(configuration.maximumChunksPerPage)"
            chunks = Array(chunks.prefix(configuration.maximumChunksPerPage))
        }
        let contentHash = sha256Hex(page.title + "\n" + chunks.map(\.contentHash).joined(separator: "\n"))
        let urlKey = PageChunk.urlKey(url)
        let ids = chunks.map { $0.id(urlKey: urlKey) }
        if let known, known.contentHash == contentHash {
            result.kind = .unchanged
            try state.save(collection: configuration.collection,
                           page: .init(url: url, etag: etag, lastModified: lastModified, contentHash: contentHash, chunkIDs: ids,
                                       links: links, missingCrawls: 0), run: run)
            return
        }
        // What the engine holds for this page: the state's list, or (state lost) the records carrying its URL.
        let previous: Set<String>
        if let known { previous = Set(known.chunkIDs) }
        else if orphanLookup { previous = Set(try await handle.get(where: .eq("url", .string(url)), include: []).map(\.id)) }
        else { previous = [] }
        let fresh = Set(ids)
        let toWrite = chunks.indices.filter { !previous.contains(ids[$0]) }
        let stale = previous.subtracting(fresh).sorted()
        let fetchedAt = ISO8601DateFormatter().string(from: Date())
        for start in stride(from: 0, to: toWrite.count, by: configuration.embedBatchTexts) {
            let members = Array(toWrite[start..<min(start + configuration.embedBatchTexts, toWrite.count)])
            let vectors = try await embedder.embed(members.map { chunks[$0].document })
            let metadatas: [Metadata?] = members.map { index in
                [
                    "url": .string(url), "title": .string(String(page.title.prefix(512))),
                    "heading_path": .string(String(chunks[index].headingPath.joined(separator: " › ").prefix(1_024))),
                    "fetched_at": .string(fetchedAt), "content_hash": .string(chunks[index].contentHash),
                    "position": .int(Int64(chunks[index].position)), "source": .string("scrape"),
                ]
            }
            try await handle.upsert(ids: members.map { ids[$0] }, vectors: vectors, documents: members.map { chunks[$0].document },
                                    metadatas: metadatas)
        }
        if !stale.isEmpty { _ = try await handle.delete(ids: stale) }
        try state.save(collection: configuration.collection,
                       page: .init(url: url, etag: etag, lastModified: lastModified, contentHash: contentHash, chunkIDs: ids, links: links,
                                   missingCrawls: 0), run: run)
        result.kind = known == nil && previous.isEmpty ? .new : .changed
        result.upserted = toWrite.count
        result.deleted = stale.count
    }

    /// Deletes a page's chunks (by the ids the state knows, else by its url metadata); returns how many.
    func removeChunks(of url: String, known: [String]?, handle: CollectionHandle) async throws -> Int {
        if let known, !known.isEmpty { return try await handle.delete(ids: known) }
        return try await handle.delete(where: .eq("url", .string(url)))
    }

    func notify(_ url: String, _ event: UpdateEvent) async {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: Fetcher.userAgent)
        request.body = .bytes(ByteBuffer(bytes: (try? JSONEncoder().encode(event)) ?? Data()))
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
            if !(200..<300).contains(response.status.code) { logger.warning("update callback answered HTTP \(response.status.code)") }
        } catch {
            logger.warning("update callback failed: \(error)")
        }
    }
}

/// The URLs this run has taken on: shared by the crawl loop and the page tasks,
/// so a redirect onto a page already queued does not index it twice.
final class URLClaims: Sendable {
    private let claimed = Mutex(Set<String>())

    /// True the first time a URL is claimed.
    func claim(_ url: String) -> Bool { claimed.withLock { $0.insert(url).inserted } }
}
