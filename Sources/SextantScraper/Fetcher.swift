import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// What one GET came back with, after following redirects inside the site.
public enum FetchOutcome: Sendable, Equatable {
    case page(url: String, body: [UInt8], contentType: String?, etag: String?, lastModified: String?)
    case notModified(url: String)
    /// 404 or 410: the page is gone.
    case gone(status: Int)
    /// Content-Length or the bytes read passed the page size bound.
    case tooLarge(bytes: Int)
    /// Not HTML (or XML for sitemaps), skipped.
    case skipped(reason: String)
    /// 5xx, timeout, connection error, a redirect off the site: try again next run.
    case failed(reason: String)
}

/// Spaces requests to one host at least `delay` apart, however many workers
/// ask at once: each caller reserves the next free slot, then sleeps until it.
actor PolitenessGate {
    private var nextSlot = ContinuousClock.now
    private var delay: Duration

    init(delay: Duration) { self.delay = delay }

    func raise(to delay: Duration) { if delay > self.delay { self.delay = delay } }

    func reserve() -> ContinuousClock.Instant {
        let now = ContinuousClock.now
        let slot = max(now, nextSlot)
        nextSlot = slot + delay
        return slot
    }
}

/// HTTP GETs as a polite crawler makes them: a User-Agent naming Sextant,
/// conditional headers, a time limit, a size limit, redirects followed by
/// hand so none leaves the site.
public final class Fetcher: Sendable {
    public struct Limits: Sendable {
        public var maximumPageBytes = 4 << 20
        public var timeoutMilliseconds: Int64 = 15_000
        public var maximumRedirects = 5
        public init() {}
    }

    public static let userAgent = "SextantBot/0.1 (+https://github.com/sextant-db/sextant; scraper)"
    /// The product token robots.txt groups are matched against.
    public static let robotsToken = "sextantbot"

    let client: HTTPClient
    let limits: Limits
    let gate: PolitenessGate

    init(limits: Limits, delay: Duration) {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.timeout = .init(connect: .seconds(5), read: .milliseconds(limits.timeoutMilliseconds))
        configuration.decompression = .enabled(limit: .size(limits.maximumPageBytes))
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.limits = limits
        gate = PolitenessGate(delay: delay)
    }

    func shutdown() async { try? await client.shutdown() }

    /// GET `url`; `allowed` vets every redirect target (inside the site, allowed by robots.txt).
    func get(_ url: String, etag: String? = nil, lastModified: String? = nil, accept: String = "text/html,application/xhtml+xml",
             allowed: (String) -> Bool) async -> FetchOutcome {
        var current = url
        for _ in 0...limits.maximumRedirects {
            let slot = await gate.reserve()
            try? await Task.sleep(until: slot, clock: .continuous)
            var request = HTTPClientRequest(url: current)
            request.headers.add(name: "User-Agent", value: Self.userAgent)
            request.headers.add(name: "Accept", value: accept)
            if current == url {
                if let etag { request.headers.add(name: "If-None-Match", value: etag) }
                if let lastModified { request.headers.add(name: "If-Modified-Since", value: lastModified) }
            }
            let response: HTTPClientResponse
            do {
                response = try await client.execute(request, timeout: .milliseconds(limits.timeoutMilliseconds))
            } catch {
                return .failed(reason: "\(current): \(Self.describe(error))")
            }
            let status = Int(response.status.code)
            switch status {
            case 301, 302, 303, 307, 308:
                guard let location = response.headers.first(name: "location"),
                      let target = CanonicalURL.canonical(location, relativeTo: current)
                else { return .failed(reason: "\(current): redirect without a usable Location") }
                guard allowed(target) else { return .skipped(reason: "redirect to a page off the site, disallowed, or already seen: \(target)") }
                current = target
                continue
            case 304:
                return .notModified(url: current)
            case 404, 410:
                return .gone(status: status)
            case 200:
                let contentType = response.headers.first(name: "content-type")
                let type = (contentType ?? "text/html").lowercased()
                guard accept.split(separator: ",").contains(where: { type.hasPrefix($0.split(separator: ";")[0]) }) || type.contains("xml")
                else { return .skipped(reason: "content type \(type)") }
                if let length = response.headers.first(name: "content-length").flatMap(Int.init), length > limits.maximumPageBytes {
                    return .tooLarge(bytes: length)
                }
                var body: [UInt8] = []
                do {
                    for try await buffer in response.body {
                        guard body.count + buffer.readableBytes <= limits.maximumPageBytes else {
                            return .tooLarge(bytes: body.count + buffer.readableBytes)
                        }
                        body.append(contentsOf: buffer.readableBytesView)
                    }
                } catch {
                    return .failed(reason: "\(current): body: \(Self.describe(error))")
                }
                return .page(url: current, body: body, contentType: contentType, etag: response.headers.first(name: "etag"),
                             lastModified: response.headers.first(name: "last-modified"))
            default:
                return .failed(reason: "\(current): HTTP \(status)")
            }
        }
        return .failed(reason: "\(url): more than \(limits.maximumRedirects) redirects")
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError {
            switch error {
            case .readTimeout, .deadlineExceeded: return "timed out"
            case .connectTimeout: return "connect timed out"
            default: return "\(error)"
            }
        }
        return "\(error)"
    }
}
