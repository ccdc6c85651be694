import FuzzDriver
import ScraperParsers

/// What the scraper reads from other people's servers: HTML to text blocks,
/// robots.txt to a policy, sitemaps to locations. The first byte picks the
/// parser, the rest is the document; none may trap or hang on any input.
func fuzzHTML(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    guard let selector = bytes.first else { return 0 }
    let body = Array(bytes.dropFirst())
    let text = HTMLDecoding.decode(body, contentType: selector & 1 == 0 ? "text/html; charset=utf-8" : "text/html; charset=latin1")
    switch selector % 3 {
    case 0:
        let page = HTMLText.extract(text)
        _ = page.blocks.count
    case 1:
        let policy = RobotsPolicy(parsing: text, userAgent: "SextantBot")
        _ = policy.allows(pathAndQuery: "/docs/index.html?x=1")
        _ = policy.allows(url: "https://example.org/a/b")
    default:
        for location in Sitemap.locations(text) { _ = CanonicalURL.canonical(location) }
    }
    return 0
}

@_cdecl("FuzzHTML_main")
func entry(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    FuzzDriver.run(argc, argv) { data, count in
        guard let data else { return fuzzHTML(UnsafeRawPointer(bitPattern: 1)!, 0) }
        return fuzzHTML(UnsafeRawPointer(data), count)
    }
}
