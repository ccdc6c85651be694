import AsyncHTTPClient
import Foundation
import NIOCore
import SextantClient
import SextantPayload
import SextantScraper
import SextantTestSupport
import Testing

/// `sextant scrape` as users run it: a real process against a real engine
/// process, crawling real documentation pages (Debian's python3-doc) served
/// from loopback by tools/python/site_server.py, then edited, partly deleted
/// and crawled again.
@Suite(.serialized) struct ScrapeRunTests {
    static let pythonDocs = "/usr/share/doc/python3.11/html"

    struct Site {
        let directory: TemporaryDirectory
        let server: BackgroundServer
        var root: String { directory.file("site") }
        var url: String { server.url + "/" }
        func page(_ path: String) -> String { server.url + "/" + path }

        /// Requests the server saw, as JSON objects.
        func requests() -> [[String: String]] {
            let text = (try? String(contentsOfFile: directory.file("requests.jsonl"), encoding: .utf8)) ?? ""
            return text.split(separator: "\n").compactMap {
                (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
            }.map { object in object.compactMapValues { value in (value as? String) ?? (value as? Int).map(String.init) } }
        }

        func clearRequests() { try? FileManager.default.removeItem(atPath: directory.file("requests.jsonl")) }
    }

    /// The tutorial and FAQ of the Python documentation, plus a home page linking
    /// them, an orphan-to-be, a page over the size limit, a slow page, a failing
    /// page and a page robots.txt forbids.
    func makeSite() throws -> Site {
        let directory = TemporaryDirectory("sextant-scrape")
        let root = directory.file("site")
        let files = FileManager.default
        try files.createDirectory(atPath: root, withIntermediateDirectories: true)
        for folder in ["tutorial", "faq"] { try files.copyItem(atPath: Self.pythonDocs + "/" + folder, toPath: root + "/" + folder) }
        try write(root + "/index.html", home(withOrphan: true))
        try write(root + "/orphan.html", "<html><head><title>Orphan</title></head><body><main><h1>Orphan</h1><p>A page that loses its only link.</p></main></body></html>")
        try write(root + "/big.html", "<html><body><p>" + String(repeating: "too large ", count: 30_000) + "</p></body></html>")
        try write(root + "/robots.txt", "User-agent: *\nDisallow: /faq/windows.html\n")
        // Linked from nowhere: found through the sitemap only.
        try write(root + "/listed.html", "<html><head><title>Listed</title></head><body><main><h1>Listed</h1><p>Only the sitemap names this page.</p></main></body></html>")
        try write(root + "/sitemap.xml", "<?xml version=\"1.0\"?><urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\"><url><loc>/listed.html</loc></url></urlset>")
        let server = try BackgroundServer(
            python: [TestDataset.packageRoot + "/tools/python/site_server.py", "--root", root, "--port", "{port}",
                     "--log", directory.file("requests.jsonl"), "--slow-seconds", "5"],
            logPath: directory.file("server.log"))
        return Site(directory: directory, server: server)
    }

    func home(withOrphan: Bool) -> String {
        """
        <html><head><title>Home</title></head><body><nav><a href="/faq/windows.html">Windows FAQ</a></nav>
        <main><h1>Home</h1><p>Documentation mirror for the scraper test.</p>
        <ul><li><a href="tutorial/index.html">Tutorial</a></li><li><a href="faq/index.html?utm_source=home#top">FAQ</a></li>
        \(withOrphan ? "<li><a href=\"orphan.html\">Orphan</a></li>" : "")
        <li><a href="big.html">Big</a></li><li><a href="tutorial">Tutorial again, redirected</a></li><li><a href="slow/page.html">Slow</a></li><li><a href="fail/page.html">Fail</a></li>
        <li><a href="https://www.python.org/">elsewhere</a></li></ul></main></body></html>
        """
    }

    func write(_ path: String, _ text: String) throws { try Data(text.utf8).write(to: URL(fileURLWithPath: path)) }

    func scrape(_ root: String, _ engine: EngineProcess, _ site: Site) throws -> (ScrapeSummary?, String) {
        let (status, out, err) = try SextantBinary.run([
            "scrape", "--data", root, "--engine", engine.address, "--collection", "docs", "--site", site.url, "--once",
            "--embedder", "sextant-hash", "--delay-ms", "0", "--timeout-ms", "1500", "--max-page-bytes", "200000", "--json",
        ])
        #expect(status == 0, "\(err.suffix(3_000))")
        let summary = out.split(separator: "\n").last.flatMap { try? JSONDecoder().decode(ScrapeSummary.self, from: Data($0.utf8)) }
        return (summary, err)
    }

    /// id → url of every record in the collection.
    func records(_ collection: CollectionHandle) async throws -> [String: String] {
        var result: [String: String] = [:]
        for record in try await collection.get(include: [.metadatas]) {
            if case .string(let url)? = record.metadata?["url"] { result[record.id] = url }
        }
        return result
    }

    /// The chunk ids the scraper's own rules give a served file (the reference for "exactly which chunks").
    func expectedIDs(_ path: String, url: String) throws -> Set<String> {
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        let page = HTMLText.extract(HTMLDecoding.decode(bytes, contentType: "text/html; charset=utf-8"))
        let key = PageChunk.urlKey(url)
        return Set(Chunker.chunks(page, policy: try ChunkingPolicy()).map { $0.id(urlKey: key) })
    }

    @Test func crawlEditDeleteAndRecrawlChangesExactlyTheAffectedChunks() async throws {
        let site = try makeSite()
        defer { site.server.stop(); site.directory.remove() }
        let root = site.directory.file("root")
        let engine = try EngineProcess(dataRoot: root)
        defer { engine.stop() }
        let client = try await SextantClient.connect(to: engine.address)

        // Run 1: everything is new.
        let (first, log1) = try scrape(root, engine, site)
        let run1 = try #require(first, "no summary: \(log1.suffix(2_000))")
        let served = try FileManager.default.subpathsOfDirectory(atPath: site.root).filter { $0.hasSuffix(".html") }
        // Everything served except what robots.txt forbids and what is over the 200,000-byte limit (big.html, faq/programming.html).
        let expectedPages = Set(served.filter { path in
            let size = (try? FileManager.default.attributesOfItem(atPath: site.root + "/" + path)[.size] as? NSNumber)?.intValue ?? 0
            return path != "faq/windows.html" && size <= 200_000
        })
        #expect(expectedPages.count >= 20 && !expectedPages.contains("faq/programming.html"))
        let collection = try await client.getCollection(name: "docs")
        let before = try await records(collection)
        #expect(Set(before.values) == Set(expectedPages.compactMap { CanonicalURL.canonical(site.page($0)) }),
                "indexed pages differ from the served ones")
        #expect(run1.pagesNew == expectedPages.count)
        #expect(run1.chunksUpserted == before.count && run1.chunksDeleted == 0)
        #expect(try await collection.count() == before.count)
        #expect(run1.complete)
        #expect(run1.pagesFailed >= 2, "slow and failing pages: \(run1.problems)")
        #expect(run1.problems.contains { $0.contains("big.html") && $0.contains("larger than") })
        #expect(run1.problems.contains { $0.contains("slow/page.html") && $0.contains("timed out") }, "\(run1.problems)")
        #expect(run1.problems.contains { $0.contains("faq/programming.html") && $0.contains("larger than") })
        #expect(run1.updateSequence == 1)
        #expect(try await client.lastUpdate(collection: "docs")?.sequence == 1)
        // Good citizen: robots.txt honoured, the User-Agent names us, tracking parameters and fragments dropped.
        let requests1 = site.requests()
        #expect(!requests1.contains { $0["path"] == "/faq/windows.html" }, "fetched a page robots.txt disallows")
        #expect(requests1.allSatisfy { ($0["user_agent"] ?? "").contains("SextantBot") })
        #expect(!requests1.contains { ($0["path"] ?? "").contains("utm_source") })
        #expect(requests1.filter { $0["path"] == "/tutorial/" }.count == 1, "a page was fetched twice in one run")
        #expect(!requests1.contains { $0["path"] == "/tutorial/index.html" }, "a folder's index page was fetched under two URLs")
        for (id, url) in before where url == site.page("tutorial/introduction.html") {
            #expect(id.hasPrefix(PageChunk.urlKey(url) + "-"))
        }

        // Edit: a sentence added to the last paragraph of one page, one page deleted, the orphan unlinked.
        let introduction = site.root + "/tutorial/introduction.html"
        var html = try String(contentsOfFile: introduction, encoding: .utf8)
        let sidebar = try #require(html.range(of: "<div class=\"sphinxsidebar\""))
        let lastParagraphEnd = try #require(html.range(of: "</p>", options: .backwards, range: html.startIndex..<sidebar.lowerBound))
        html.insert(contentsOf: " Sextant edited this sentence.", at: lastParagraphEnd.lowerBound)
        try write(introduction, html)
        try FileManager.default.removeItem(atPath: site.root + "/faq/library.html")
        try write(site.root + "/index.html", home(withOrphan: false))
        site.clearRequests()

        // Run 2: two pages changed, one gone; the orphan is missed once and kept.
        let (second, log2) = try scrape(root, engine, site)
        let run2 = try #require(second, "no summary: \(log2.suffix(2_000))")
        let after = try await records(collection)
        #expect(run2.pagesChanged == 2, "\(run2.line)")
        #expect(run2.pagesNew == 0)
        #expect(run2.pagesRemoved == 1)
        #expect(run2.pagesNotModified == expectedPages.count - 4, "\(run2.line)")
        let introURL = site.page("tutorial/introduction.html")
        let oldIntro = Set(before.filter { $0.value == introURL }.keys)
        let newIntro = Set(after.filter { $0.value == introURL }.keys)
        #expect(newIntro == (try expectedIDs(introduction, url: introURL)))
        let replaced = oldIntro.subtracting(newIntro)
        #expect(!replaced.isEmpty && replaced.count < oldIntro.count / 2, "an edit at the end replaced \(replaced.count) of \(oldIntro.count) chunks")
        let homeURL = site.url
        let libraryURL = site.page("faq/library.html")
        #expect(!after.values.contains(libraryURL), "a deleted page kept its chunks")
        #expect(after.values.contains(site.page("orphan.html")), "a page missed by one crawl lost its chunks")
        // Exactly these ids came and went; every other page's chunks are untouched.
        let gone = Set(before.keys).subtracting(after.keys)
        let came = Set(after.keys).subtracting(before.keys)
        #expect(gone == replaced.union(before.filter { $0.value == libraryURL || $0.value == homeURL }.keys).subtracting(after.keys))
        #expect(came == newIntro.subtracting(oldIntro).union(after.filter { $0.value == homeURL }.keys).subtracting(before.keys))
        #expect(run2.chunksUpserted == came.count && run2.chunksDeleted == gone.count)
        #expect(run2.updateSequence == 2)
        // Unchanged pages cost a conditional GET and nothing else.
        let requests2 = site.requests()
        let conditional = requests2.filter { $0["status"] == "304" }
        #expect(conditional.count == run2.pagesNotModified)
        #expect(conditional.allSatisfy { $0["if_none_match"] != nil })

        // Run 3: the orphan, missed by a second complete crawl, goes.
        let (third, _) = try scrape(root, engine, site)
        let run3 = try #require(third)
        #expect(run3.pagesRemoved == 1 && run3.pagesChanged == 0, "\(run3.line)")
        let final = try await records(collection)
        #expect(!final.values.contains(site.page("orphan.html")))
        #expect(Set(final.keys) == Set(after.keys).subtracting(after.filter { $0.value == site.page("orphan.html") }.keys))
        #expect(run3.updateSequence == 3)

        // Run 4: nothing changed, nothing written, no event.
        let (fourth, _) = try scrape(root, engine, site)
        let run4 = try #require(fourth)
        #expect(run4.chunksUpserted == 0 && run4.chunksDeleted == 0 && run4.updateSequence == nil, "\(run4.line)")
        #expect(try await client.lastUpdate(collection: "docs")?.sequence == 3)
        #expect(try await collection.count() == final.count)
        await client.close()
    }

    @Test func maxPagesMakesAnIncompleteCrawlThatRemovesNothing() async throws {
        let site = try makeSite()
        defer { site.server.stop(); site.directory.remove() }
        let root = site.directory.file("root")
        let engine = try EngineProcess(dataRoot: root)
        defer { engine.stop() }
        let (full, _) = try scrape(root, engine, site)
        #expect(full?.complete == true)
        // Two more runs limited to a few pages: most pages are not reached, none may count as missing.
        for _ in 0..<2 {
            let (status, out, err) = try SextantBinary.run([
                "scrape", "--data", root, "--engine", engine.address, "--collection", "docs", "--site", site.url, "--once",
                "--embedder", "sextant-hash", "--delay-ms", "0", "--max-pages", "3", "--json",
            ])
            #expect(status == 0, "\(err.suffix(2_000))")
            let summary = out.split(separator: "\n").last.flatMap { try? JSONDecoder().decode(ScrapeSummary.self, from: Data($0.utf8)) }
            #expect(summary?.complete == false)
            #expect(summary?.pagesRemoved == 0 && summary?.chunksDeleted == 0)
        }
        // The scraper's state lost (a disk swapped, a partial restore): the engine is asked which chunks
        // each page has, so the next full run rewrites nothing and deletes nothing.
        let client = try await SextantClient.connect(to: engine.address)
        let before = try await client.getCollection(name: "docs").count()
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: root + "/scraper/state.sqlite" + suffix) }
        let (rebuilt, rebuiltLog) = try scrape(root, engine, site)
        #expect(rebuilt?.complete == true, "\(rebuiltLog.suffix(1_000))")
        #expect(rebuilt?.chunksUpserted == 0 && rebuilt?.chunksDeleted == 0, "\(rebuilt?.line ?? "no summary")")
        #expect(try await client.getCollection(name: "docs").count() == before)
        await client.close()

        // Bad flags are refused with a clear message, not a crash.
        let (status, _, err) = try SextantBinary.run(["scrape", "--engine", engine.address, "--collection", "docs", "--site", "ftp://x/", "--once"])
        #expect(status != 0 && err.contains("http(s) URL"))
        let (status2, _, err2) = try SextantBinary.run([
            "scrape", "--engine", engine.address, "--collection", "docs", "--site", site.url, "--once", "--exclude", "([",
        ])
        #expect(status2 != 0 && err2.contains("invalid regular expression"))
    }

    @Test func upScrapesTheSiteIntoAnEmptyCollectionAtStart() async throws {
        let site = try makeSite()
        defer { site.server.stop(); site.directory.remove() }
        let up = try UpProcess(dataRoot: site.directory.file("data"),
                               extraArguments: ["--no-demo", "--no-ingest", "--site", site.url, "--scrape-collection", "kb"])
        defer { up.stop() }
        try up.waitFor("scrape finished", timeoutSeconds: 300)
        let client = try await SextantClient.connect(to: up.engineAddress)
        let collection = try await client.getCollection(name: "kb")
        #expect(try await collection.count() > 100)
        #expect(collection.info.metadata["sextant:embedder"] == .string("all-MiniLM-L6-v2@1"))
        #expect(try await client.lastUpdate(collection: "kb")?.source == "scrape")
        await client.close()
        // The page's status line reads the scraper's runs beside the worker's.
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: up.apiURL + "/v1/ingest/runs"), timeout: .seconds(30))
        let body = String(buffer: try await response.body.collect(upTo: 1 << 20))
        #expect(response.status.code == 200 && body.contains("\"site\":\"\(site.url)") && body.contains("\"complete\":true"), "\(body)")
    }
}
