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

    /// `*` matches any run of characters; a final `$` anchors the end. On
    /// UTF-8 bytes, as the protocol defines it: Foundation's `range(of:)` on a
    /// substring returned a range past its end for some inputs (NUL bytes and
    /// invalid UTF-8 in a robots.txt, found by FuzzHTML), which trapped.
    package static func matches(pattern: String, path: String) -> Bool {
        var pattern = Array(pattern.utf8)
        let anchored = pattern.last == UInt8(ascii: "$")
        if anchored { pattern.removeLast() }
        let pieces = pattern.split(separator: UInt8(ascii: "*"), omittingEmptySubsequences: false)
        let path = Array(path.utf8)
        var position = 0
        for (index, piece) in pieces.enumerated() {
            if index == 0 {
                guard path.count >= piece.count, path[0..<piece.count].elementsEqual(piece) else { return false }
                position = piece.count
            } else if index == pieces.count - 1 && anchored {
                return path.count - position >= piece.count && path[(path.count - piece.count)...].elementsEqual(piece)
            } else if !piece.isEmpty {
                guard let found = firstIndex(of: piece, in: path, from: position) else { return false }
                position = found + piece.count
            }
        }
        return !anchored || position == path.count
    }

    /// Where `needle` first occurs in `haystack` at or after `start`.
    static func firstIndex(of needle: ArraySlice<UInt8>, in haystack: [UInt8], from start: Int) -> Int? {
        var candidate = start
        while candidate + needle.count <= haystack.count {
            if haystack[candidate..<(candidate + needle.count)].elementsEqual(needle) { return candidate }
            candidate += 1
        }
        return nil
    }
}
