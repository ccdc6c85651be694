import Foundation

/// robots.txt as RFC 9309 reads it: the group for our product token (else the
/// `*` group), Allow/Disallow with `*` and `$`, the longest match deciding and
/// Allow winning a tie; plus the common Crawl-delay and Sitemap extensions.
public struct RobotsPolicy: Sendable, Equatable {
    struct Rule: Sendable, Equatable {
        var allow: Bool
        var pattern: String
    }

    var rules: [Rule]
    /// Seconds between requests the site asks for (capped by the crawler).
    public var crawlDelaySeconds: Double?
    public var sitemaps: [String]

    /// robots.txt larger than this is read only up to here (RFC 9309 asks for at least 500 KiB).
    public static let maximumBytes = 512 * 1_024

    public static let allowAll = RobotsPolicy(rules: [], crawlDelaySeconds: nil, sitemaps: [])
    /// What a 5xx or unreachable robots.txt means: RFC 9309 says assume complete disallow.
    public static let disallowAll = RobotsPolicy(rules: [Rule(allow: false, pattern: "/")], crawlDelaySeconds: nil, sitemaps: [])

    public init(parsing text: String, userAgent token: String) {
        let token = token.lowercased()
        var groups: [(agents: [String], rules: [Rule], delay: Double?)] = []
        var sitemaps: [String] = []
        var current: (agents: [String], rules: [Rule], delay: Double?)? = nil
        var lastWasAgent = false
        for rawLine in text.prefix(Self.maximumBytes).split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            guard let colon = line.firstIndex(of: ":") else { continue }
            let field = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            switch field {
            case "user-agent":
                if !lastWasAgent {
                    if let current { groups.append(current) }
                    current = ([], [], nil)
                }
                current?.agents.append(value.lowercased())
                lastWasAgent = true
            case "allow", "disallow":
                lastWasAgent = false
                guard current != nil else { continue }
                // An empty Disallow allows everything; it adds no rule.
                if !value.isEmpty { current?.rules.append(Rule(allow: field == "allow", pattern: value)) }
            case "crawl-delay":
                lastWasAgent = false
                if let seconds = Double(value), seconds >= 0 { current?.delay = seconds }
            case "sitemap":
                lastWasAgent = false
                sitemaps.append(value)
            default:
                lastWasAgent = false
            }
        }
        if let current { groups.append(current) }
        // Our token matches a group whose agent is a prefix-free match ("sextant" in "sextantbot" too).
        let ours = groups.filter { $0.agents.contains { $0 != "*" && (token.hasPrefix($0) || $0.hasPrefix(token)) } }
        let chosen = ours.isEmpty ? groups.filter { $0.agents.contains("*") } : ours
        rules = chosen.flatMap(\.rules)
        crawlDelaySeconds = chosen.compactMap(\.delay).max()
        self.sitemaps = sitemaps
    }

    init(rules: [Rule], crawlDelaySeconds: Double?, sitemaps: [String]) {
        self.rules = rules
        self.crawlDelaySeconds = crawlDelaySeconds
        self.sitemaps = sitemaps
    }

    /// Whether the path (with its query) may be fetched.
    public func allows(pathAndQuery: String) -> Bool {
        let path = pathAndQuery.isEmpty ? "/" : pathAndQuery
        var best: (length: Int, allow: Bool)? = nil
        for rule in rules where Self.matches(pattern: rule.pattern, path: path) {
            let length = rule.pattern.utf8.count
            if let current = best, length < current.length || (length == current.length && !rule.allow) { continue }
            best = (length, rule.allow)
        }
        return best?.allow ?? true
    }

    public func allows(url: String) -> Bool {
        guard let components = URLComponents(string: url) else { return false }
        let path = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
        return allows(pathAndQuery: path + (components.percentEncodedQuery.map { "?" + $0 } ?? ""))
    }

    /// `*` matches any run of characters; a final `$` anchors the end.
    static func matches(pattern: String, path: String) -> Bool {
        var pattern = Substring(pattern)
        let anchored = pattern.hasSuffix("$")
        if anchored { pattern = pattern.dropLast() }
        let pieces = pattern.split(separator: "*", omittingEmptySubsequences: false)
        var rest = Substring(path)
        for (index, piece) in pieces.enumerated() {
            if index == 0 {
                guard rest.hasPrefix(piece) else { return false }
                rest = rest.dropFirst(piece.count)
            } else if index == pieces.count - 1 && anchored {
                return rest.hasSuffix(piece)
            } else if !piece.isEmpty {
                guard let found = rest.range(of: piece) else { return false }
                rest = rest[found.upperBound...]
            }
        }
        return !anchored || rest.isEmpty
    }
}
