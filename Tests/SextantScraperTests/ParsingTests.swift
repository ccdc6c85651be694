import Foundation
import SextantScraper
import Testing

/// The pieces of the scraper that need no network: robots.txt, URLs, HTML, chunks.
@Suite struct ParsingTests {
    @Test func robotsGroupsLongestMatchAndWildcards() {
        let text = """
            # comments are ignored
            User-agent: *
            Disallow: /private/
            Allow: /private/open.html
            Disallow: /*.pdf$
            Crawl-delay: 2

            User-agent: OtherBot
            Disallow: /

            Sitemap: https://example.com/sitemap.xml
            """
        let robots = RobotsPolicy(parsing: text, userAgent: "sextantbot")
        #expect(robots.allows(pathAndQuery: "/index.html"))
        #expect(!robots.allows(pathAndQuery: "/private/x.html"))
        #expect(robots.allows(pathAndQuery: "/private/open.html"))
        #expect(!robots.allows(pathAndQuery: "/docs/manual.pdf"))
        #expect(robots.allows(pathAndQuery: "/docs/manual.pdf?x=1"))
        #expect(robots.crawlDelaySeconds == 2)
        #expect(robots.sitemaps == ["https://example.com/sitemap.xml"])
        // A group naming us replaces the * group.
        let ours = RobotsPolicy(parsing: "User-agent: *\nDisallow: /\n\nUser-agent: SextantBot\nDisallow: /tmp/\n", userAgent: "sextantbot")
        #expect(ours.allows(pathAndQuery: "/index.html"))
        #expect(!ours.allows(pathAndQuery: "/tmp/a"))
        // Empty Disallow allows everything.
        #expect(RobotsPolicy(parsing: "User-agent: *\nDisallow:\n", userAgent: "sextantbot").allows(pathAndQuery: "/a"))
        // Wildcards, anchors and bytes Foundation's substring search mishandled
        // (NUL and invalid UTF-8 in someone's robots.txt trapped the scraper; found by FuzzHTML).
        let hostile = RobotsPolicy(
            parsing: "User-agent: SextantBot\nDisallow: /**/*b\u{0}\u{0}\u{0}\u{FFFD}*$\nDisallow: /a*b*c$\nAllow: /a*b\n",
            userAgent: "sextantbot")
        #expect(hostile.allows(pathAndQuery: "/x/y/b"))
        #expect(!hostile.allows(pathAndQuery: "/a/1/b/2/c"))
        #expect(hostile.allows(pathAndQuery: "/a/1/b/2/c/d"))
        #expect(hostile.allows(url: "https://example.org/a/b"))
        #expect(RobotsPolicy.matches(pattern: "/**/*b*$", path: "/q/b/z"))
        #expect(!RobotsPolicy.matches(pattern: "/*.pdf$", path: "/a.pdf?x=1"))
        #expect(RobotsPolicy.matches(pattern: "/*.pdf", path: "/a.pdf?x=1"))
    }

    @Test func canonicalURLsDropFragmentsTrackingAndDefaults() {
        #expect(CanonicalURL.canonical("HTTP://Example.COM:80/a/./b/../c.html?utm_source=x&id=3#part") == "http://example.com/a/c.html?id=3")
        #expect(CanonicalURL.canonical("https://example.com") == "https://example.com/")
        #expect(CanonicalURL.canonical("http://h/docs/index.html") == "http://h/docs/")
        #expect(CanonicalURL.canonical("../x.html#y", relativeTo: "http://h:8000/docs/a/b.html") == "http://h:8000/docs/x.html")
        #expect(CanonicalURL.canonical("mailto:a@b.c") == nil)
        #expect(CanonicalURL.canonical("javascript:void(0)") == nil)
        #expect(CanonicalURL.canonical("page.html?gclid=1&fbclid=2", relativeTo: "http://h/") == "http://h/page.html")
        let scope = try? SiteScope("http://127.0.0.1:8000/docs/index.html")
        #expect(scope?.contains("http://127.0.0.1:8000/docs/library/json.html") == true)
        #expect(scope?.contains("http://127.0.0.1:8000/other/") == false)
        #expect(scope?.contains("http://127.0.0.1:8001/docs/") == false)
        #expect(throws: ScrapeError.self) { try SiteScope("ftp://example.com/") }
    }

    @Test func extractionKeepsMainTextAndDropsChrome() {
        let html = """
            <html><head><title>json &#8212; JSON encoder</title><script>var x = "<p>not text</p>";</script>
            <style>p { color: red }</style><link rel="canonical" href="/json.html"></head>
            <body><div class="related" role="navigation"><a href="prev.html">previous</a></div>
            <nav><a href="nav.html">Nav link</a> Navigation text</nav>
            <div class="body" role="main">
              <h1>json — JSON encoder<a class="headerlink" href="#x">¶</a></h1>
              <p>JSON is a <b>lightweight</b> data&nbsp;interchange format.</p>
              <!-- a comment <p>hidden</p> -->
              <h2>Basic usage</h2><ul><li>dumps</li><li>loads &amp; load</li></ul>
              <pre>  import json
              json.dumps([1, 2])</pre>
              <a href="other.html#frag">other</a>
            </div>
            <div class="footer">Copyright</div></body></html>
            """
        let page = HTMLText.extract(html)
        #expect(page.title == "json — JSON encoder")
        #expect(page.canonical == "/json.html")
        #expect(page.links.contains("prev.html") && page.links.contains("nav.html") && page.links.contains("other.html#frag"))
        let texts = page.blocks.map(\.text)
        #expect(page.blocks.first == TextBlock(headingLevel: 1, text: "json — JSON encoder"))
        #expect(texts.contains("JSON is a lightweight data interchange format."))
        #expect(page.blocks.contains(TextBlock(headingLevel: 2, text: "Basic usage")))
        #expect(texts.contains("dumps") && texts.contains("loads & load"))
        #expect(page.blocks.contains { $0.preformatted && $0.text.contains("json.dumps([1, 2])") })
        let all = texts.joined(separator: " ")
        for chrome in ["not text", "color", "Navigation text", "previous", "Copyright", "hidden", "¶"] {
            #expect(!all.contains(chrome), "kept chrome: \(chrome)")
        }
    }

    @Test func charsetsAreHonoured() {
        let latin1: [UInt8] = Array("<p>caf".utf8) + [0xE9] + Array("</p>".utf8)
        #expect(HTMLText.extract(HTMLDecoding.decode(latin1, contentType: "text/html; charset=ISO-8859-1")).blocks.first?.text == "café")
        let meta: [UInt8] = Array("<meta charset=\"windows-1252\"><p>".utf8) + [0x93, 0x71, 0x94] + Array("</p>".utf8)
        #expect(HTMLText.extract(HTMLDecoding.decode(meta, contentType: "text/html")).blocks.first?.text == "“q”")
        #expect(HTMLText.extract(HTMLDecoding.decode(Array("<p>naïve</p>".utf8), contentType: nil)).blocks.first?.text == "naïve")
    }

    @Test func chunksFollowHeadingsWithBoundsOverlapAndStableIDs() throws {
        var page = ExtractedPage()
        page.title = "Guide"
        page.blocks = [TextBlock(headingLevel: 1, text: "Guide"), TextBlock(headingLevel: 0, text: "Intro paragraph.")]
        page.blocks.append(TextBlock(headingLevel: 2, text: "Install"))
        for index in 0..<12 { page.blocks.append(TextBlock(headingLevel: 0, text: "Install step \(index): " + String(repeating: "word ", count: 30))) }
        page.blocks.append(TextBlock(headingLevel: 2, text: "Use"))
        page.blocks.append(TextBlock(headingLevel: 0, text: String(repeating: "A long sentence about use. ", count: 80)))
        let policy = try ChunkingPolicy(maximumCharacters: 600, overlapCharacters: 100)
        let chunks = Chunker.chunks(page, policy: policy)
        #expect(chunks.first?.document == "Guide\nIntro paragraph.")
        let install = chunks.filter { $0.headingPath == ["Guide", "Install"] }
        #expect(install.count >= 3)
        func body(_ chunk: PageChunk) -> String {
            let parts = chunk.document.split(separator: "\n", maxSplits: 1)
            return parts.count > 1 ? String(parts[1]) : chunk.document
        }
        for chunk in chunks {
            #expect(body(chunk).count <= 600, "chunk \(chunk.position) has \(body(chunk).count) characters")
        }
        // Overlap: each Install chunk after the first starts with the tail of the one before.
        for (previous, next) in zip(install, install.dropFirst()) {
            let head = String(body(next).prefix(40))
            #expect(previous.document.contains(head), "no overlap between \(previous.position) and \(next.position)")
        }
        #expect(chunks.contains { $0.headingPath == ["Guide", "Use"] })
        #expect(chunks.map(\.position) == Array(0..<chunks.count))
        // Same text, same ids; an edit in one section changes only that section's ids.
        let key = PageChunk.urlKey("http://h/guide.html")
        #expect(Chunker.chunks(page, policy: policy).map { $0.id(urlKey: key) } == chunks.map { $0.id(urlKey: key) })
        var edited = page
        edited.blocks[edited.blocks.count - 1].text += " One more."
        let after = Chunker.chunks(edited, policy: policy)
        let changed: [Int] = zip(chunks, after).filter { pair in pair.0.id(urlKey: key) != pair.1.id(urlKey: key) }.map { pair in pair.0.position }
        #expect(!changed.isEmpty && changed.allSatisfy { chunks[$0].headingPath == ["Guide", "Use"] })
    }
}
