/// What the scraper reports: a bad configuration, a site that refuses, or the
/// engine. Kept apart so that the parsers that throw it stand alone (the fuzz
/// targets compile them by themselves).
public enum ScrapeError: Error, Sendable, CustomStringConvertible, Equatable {
    case configuration(String)
    case site(String)
    case engine(String)

    public var description: String {
        switch self {
        case .configuration(let message): return "configuration: \(message)"
        case .site(let message): return "site: \(message)"
        case .engine(let message): return "engine: \(message)"
        }
    }
}
