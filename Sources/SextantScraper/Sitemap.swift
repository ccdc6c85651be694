import Foundation

/// The `<loc>` entries of a sitemap or a sitemap index (the scraper follows
/// both): text between each `<loc>` and the next `</loc>`, trimmed, entities
/// decoded. A plain scan rather than an XML parser, since sitemaps in the
/// wild are often not well-formed and only the locations matter.
public enum Sitemap {
    public static func locations(_ xml: String) -> [String] {
        var found: [String] = []
        var rest = Substring(xml)
        while let open = rest.range(of: "<loc>"), let close = rest.range(of: "</loc>", range: open.upperBound..<rest.endIndex) {
            found.append(HTMLEntities.decode(rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespacesAndNewlines)))
            rest = rest[close.upperBound...]
        }
        return found
    }
}
