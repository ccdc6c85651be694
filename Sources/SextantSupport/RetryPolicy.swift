/// How a caller retries an operation that failed for a passing reason: how
/// many attempts, and how long it waits between them (exponential backoff,
/// doubling from an initial delay up to a maximum, with full jitter when many
/// callers may fail together). Every retry in Sextant goes through this: the
/// engine client, object storage, remote model APIs, the bot platforms.
public struct RetryPolicy: Sendable, Equatable {
    /// Attempts in all, the first included (1: no retry).
    public var attempts: Int
    public var initialDelayMilliseconds: Int64
    public var maximumDelayMilliseconds: Int64
    /// Wait a uniform time in [delay / 2, delay]: concurrent callers do not retry in lockstep.
    public var jitter: Bool

    public init(attempts: Int, initialDelayMilliseconds: Int64, maximumDelayMilliseconds: Int64, jitter: Bool = false) {
        precondition(attempts >= 1 && initialDelayMilliseconds >= 0 && maximumDelayMilliseconds >= initialDelayMilliseconds,
                     "a retry policy makes at least one attempt and its delays grow")
        self.attempts = attempts
        self.initialDelayMilliseconds = initialDelayMilliseconds
        self.maximumDelayMilliseconds = maximumDelayMilliseconds
        self.jitter = jitter
    }

    /// The wait after `failures` consecutive failures (1 for the first): the
    /// initial delay doubled each time, capped at the maximum.
    public func delayMilliseconds(afterFailures failures: Int) -> Int64 {
        let doublings = min(max(failures - 1, 0), 40)
        var delay = initialDelayMilliseconds
        for _ in 0..<doublings where delay < maximumDelayMilliseconds { delay *= 2 }
        delay = min(delay, maximumDelayMilliseconds)
        guard jitter, delay > 1 else { return delay }
        return Int64.random(in: (delay / 2)...delay)
    }

    /// What a failed attempt means.
    public enum Verdict: Sendable, Equatable {
        /// Not worth another attempt: the error is thrown at once.
        case fail
        /// Try again after the policy's delay.
        case retry
        /// Try again after this long (a server's Retry-After), not counting toward the backoff.
        case retryAfter(milliseconds: Int64)
    }

    /// Runs `operation` (given its 1-based attempt number) until it returns,
    /// `classify` calls a failure final, or the attempts run out; then the last
    /// error is thrown. Cancellation ends the waits.
    public func run<T>(_ operation: (Int) async throws -> T, classify: (any Error) -> Verdict) async throws -> T {
        var failures = 0
        while true {
            do {
                return try await operation(failures + 1)
            } catch {
                failures += 1
                let verdict = classify(error)
                guard failures < attempts, verdict != .fail else { throw error }
                let wait: Int64
                if case .retryAfter(let milliseconds) = verdict { wait = max(0, milliseconds) } else {
                    wait = delayMilliseconds(afterFailures: failures)
                }
                try await Task.sleep(for: .milliseconds(wait))
            }
        }
    }
}
