import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SextantJSON
import SextantSupport
import Synchronization

/// How calls to a remote model API behave: bounded concurrency, retries with
/// exponential backoff on 429 and 5xx (honouring Retry-After), a timeout per
/// call, and a budget of requests per run.
public struct RemoteCallPolicy: Sendable {
    public var maximumConcurrentRequests = 4
    /// 429, 5xx and transport errors: 5 attempts, 500 ms doubling to 30 s with
    /// jitter (a Retry-After header wins).
    public var retry = RetryPolicy(attempts: 5, initialDelayMilliseconds: 500, maximumDelayMilliseconds: 30_000, jitter: true)
    public var timeoutSeconds: Int64 = 60
    /// Requests allowed per run (each retry counts); nil: unbounded.
    public var budgetRequests: Int?
    /// Largest reply accepted.
    public var maximumReplyBytes = 32 << 20
    public init() {}
}

public struct RemoteModelError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable { case budgetExhausted, http, transport, malformedReply, configuration }
    public let kind: Kind
    public let message: String
    public let status: Int?
    public init(_ kind: Kind, _ message: String, status: Int? = nil) {
        self.kind = kind
        self.message = message
        self.status = status
    }
    public var description: String { message }
}

/// A counting semaphore for async code.
final class AsyncLimiter: Sendable {
    private struct State {
        var available: Int
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state: Mutex<State>
    init(_ limit: Int) { state = Mutex(State(available: max(1, limit))) }

    func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { state -> Bool in
                if state.available > 0 {
                    state.available -= 1
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiters.isEmpty {
                state.available += 1
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.resume()
    }
}

/// POSTs JSON to a model API under a `RemoteCallPolicy`. Counts requests and
/// retries for the run summary. API keys travel in headers and never appear in
/// errors or logs.
public final class RemoteJSONClient: Sendable {
    public let policy: RemoteCallPolicy
    private let limiter: AsyncLimiter
    private let counters = Mutex<(requests: Int, retries: Int)>((0, 0))

    public init(policy: RemoteCallPolicy) {
        self.policy = policy
        limiter = AsyncLimiter(policy.maximumConcurrentRequests)
    }

    public var requestsSent: Int { counters.withLock { $0.requests } }
    public var retries: Int { counters.withLock { $0.retries } }

    private func take() -> Bool {
        counters.withLock { counters in
            if let budget = policy.budgetRequests, counters.requests >= budget { return false }
            counters.requests += 1
            return true
        }
    }

    public func post(_ url: String, headers: [(String, String)], body: JSONValue) async throws -> JSONValue {
        await limiter.acquire()
        defer { limiter.release() }
        let bytes = JSON.serializeBytes(body)
        do {
            return try await attempts(url, headers: headers, bytes: bytes)
        } catch let final as Final {
            throw final.error
        } catch let passing as Passing {
            throw passing.failure
        }
    }

    private func attempts(_ url: String, headers: [(String, String)], bytes: [UInt8]) async throws -> JSONValue {
        try await policy.retry.run({ attempt in
            if attempt > 1 { counters.withLock { $0.retries += 1 } }
            guard take() else { throw Final(RemoteModelError(.budgetExhausted, "request budget of \(policy.budgetRequests ?? 0) exhausted")) }
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            for (name, value) in headers { request.headers.add(name: name, value: value) }
            request.body = .bytes(bytes)
            let response: HTTPClientResponse
            let collected: ByteBuffer
            do {
                response = try await HTTPClient.shared.execute(request, timeout: .seconds(policy.timeoutSeconds))
                collected = try await response.body.collect(upTo: policy.maximumReplyBytes)
            } catch {
                throw Passing(failure: RemoteModelError(.transport, "\(Self.redact(url)): \(error)"), retryAfterMilliseconds: nil)
            }
            let status = Int(response.status.code)
            if status == 200 {
                do { return try JSON.parse(Array(collected.readableBytesView)) } catch {
                    throw Final(RemoteModelError(.malformedReply, "\(Self.redact(url)): reply is not JSON: \(error)"))
                }
            }
            let snippet = String(decoding: collected.readableBytesView.prefix(300), as: UTF8.self)
            let failure = RemoteModelError(.http, "\(Self.redact(url)): HTTP \(status): \(snippet)", status: status)
            guard status == 429 || status >= 500 else { throw Final(failure) }
            let retryAfter = response.headers.first(name: "retry-after").flatMap(Double.init).map { Int64(max(0, min($0, 120)) * 1_000) }
            throw Passing(failure: failure, retryAfterMilliseconds: retryAfter)
        }, classify: { error in
            guard let passing = error as? Passing else { return .fail }
            return passing.retryAfterMilliseconds.map { .retryAfter(milliseconds: $0) } ?? .retry
        })
    }

    /// Not worth retrying; `post` throws its error.
    private struct Final: Error {
        let error: RemoteModelError
        init(_ error: RemoteModelError) { self.error = error }
    }

    /// A 429, 5xx or transport failure; the server may say when to come back.
    private struct Passing: Error {
        let failure: RemoteModelError
        let retryAfterMilliseconds: Int64?
    }


    /// URLs never carry keys here, but strip any query string anyway.
    static func redact(_ url: String) -> String { String(url.prefix { $0 != "?" }) }
}
