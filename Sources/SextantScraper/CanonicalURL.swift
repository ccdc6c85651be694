import Foundation

/// The site being crawled: its scheme, host, port and the path prefix that
/// bounds it. `https://docs.example.com/guide/` keeps the crawl inside /guide/.
public struct SiteScope: Sendable, Equatable {
    public let root: String
    let scheme: String
    let host: String
    let port: Int?
    let pathPrefix: String

    /// The longest URL the crawler keeps; longer links are dropped as noise.
    public static let maximumURLBytes = 2_048

    public init(_ text: String) throws(ScrapeError) {
        guard let canonical = CanonicalURL.canonical(text), let components = URLComponents(string: canonical),
              let scheme = components.scheme, let host = components.host
        else { throw .configuration("--site must be an absolute http(s) URL, got '\(text)'") }
        self.scheme = scheme
        self.host = host
        port = components.port
        // A page URL bounds the crawl by its folder: /docs/index.html → /docs/.
        var path = components.path
        if !path.hasSuffix("/") { path = String(path[..<(path.lastIndex(of: "/").map { path.index(after: $0) } ?? path.endIndex)]) }
        pathPrefix = path.isEmpty ? "/" : path
        root = canonical
    }

    /// The site's origin, e.g. `http://127.0.0.1:8000`.
    public var origin: String { "\(scheme)://\(host)" + (port.map { ":\($0)" } ?? "") }

    public func contains(_ canonical: String) -> Bool {
        guard let components = URLComponents(string: canonical) else { return false }
        return components.scheme == scheme && components.host == host && components.port == port
            && components.path.hasPrefix(pathPrefix)
    }
}

/// URL canonicalisation, so one page is one URL: lower-case scheme and host,
/// no default port, no fragment, no tracking parameters, dot segments
/// resolved, an empty path made "/".
public enum CanonicalURL {
    /// Query parameters that name a campaign or a click, not a page.
    static let trackingParameters: Set<String> = [
        "fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "yclid", "_ga", "_gl", "igshid", "ref_src",
    ]

    public static func canonical(_ text: String, relativeTo base: String? = nil) -> String? {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty, trimmed.utf8.count <= SiteScope.maximumURLBytes else { return nil }
        let lowered = trimmed.lowercased()
        for scheme in ["javascript:", "mailto:", "tel:", "data:", "ftp:"] where lowered.hasPrefix(scheme) { return nil }
        let resolved: URL?
        if let base, let baseURL = URL(string: base) {
            resolved = URL(string: trimmed, relativeTo: baseURL)?.absoluteURL
                ?? trimmed.addingPercentEncoding(withAllowedCharacters: .urlFragmentAllowed)
                    .flatMap { URL(string: $0, relativeTo: baseURL)?.absoluteURL }
        } else {
            resolved = URL(string: trimmed)
        }
        guard let url = resolved, var components = URLComponents(url: url, resolvingAgainstBaseURL: true),
              let scheme = components.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = components.host?.lowercased(), !host.isEmpty
        else { return nil }
        components.scheme = scheme
        components.host = host
        if (scheme == "http" && components.port == 80) || (scheme == "https" && components.port == 443) { components.port = nil }
        components.fragment = nil
        components.user = nil
        components.password = nil
        var path = removeDotSegments(components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath)
        // A folder and its index page are one page: /docs/index.html is /docs/.
        for index in ["/index.html", "/index.htm"] where path.lowercased().hasSuffix(index) { path = String(path.dropLast(index.count - 1)) }
        components.percentEncodedPath = path
        if let items = components.queryItems {
            let kept = items.filter { item in
                let name = item.name.lowercased()
                return !name.hasPrefix("utm_") && !trackingParameters.contains(name)
            }
            components.queryItems = kept.isEmpty ? nil : kept
        }
        guard let result = components.string, result.utf8.count <= SiteScope.maximumURLBytes else { return nil }
        return result
    }

    /// RFC 3986 section 5.2.4.
    static func removeDotSegments(_ path: String) -> String {
        guard path.contains(".") else { return path }
        var output: [Substring] = []
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        for (index, segment) in segments.enumerated() {
            switch segment {
            case ".": if index == segments.count - 1 { output.append("") }
            case "..":
                if output.count > 1 { output.removeLast() }
                if index == segments.count - 1 { output.append("") }
            default: output.append(segment)
            }
        }
        let joined = output.joined(separator: "/")
        return joined.hasPrefix("/") ? joined : "/" + joined
    }
}
