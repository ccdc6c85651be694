import Foundation
import SextantSupport
import Synchronization
import Testing

@Suite struct RetryPolicyTests {
    struct Passing: Error {}
    struct Final: Error {}

    @Test func delaysDoubleFromTheInitialDelayUpToTheMaximum() {
        let policy = RetryPolicy(attempts: 10, initialDelayMilliseconds: 50, maximumDelayMilliseconds: 2_000)
        #expect((1...8).map { policy.delayMilliseconds(afterFailures: $0) } == [50, 100, 200, 400, 800, 1_600, 2_000, 2_000])
        // A very long run of failures neither overflows nor exceeds the cap.
        #expect(policy.delayMilliseconds(afterFailures: 10_000) == 2_000)
    }

    @Test func jitterStaysWithinHalfTheDelayAndTheDelay() {
        let policy = RetryPolicy(attempts: 10, initialDelayMilliseconds: 400, maximumDelayMilliseconds: 400, jitter: true)
        let waits = (0..<200).map { _ in policy.delayMilliseconds(afterFailures: 3) }
        #expect(waits.allSatisfy { (200...400).contains($0) })
        #expect(Set(waits).count > 1, "jitter varies the wait")
    }

    @Test func retriesPassingFailuresUntilSuccess() async throws {
        let policy = RetryPolicy(attempts: 4, initialDelayMilliseconds: 1, maximumDelayMilliseconds: 4)
        let attempts = Mutex<[Int]>([])
        let value = try await policy.run({ attempt in
            attempts.withLock { $0.append(attempt) }
            if attempt < 3 { throw Passing() }
            return "done"
        }, classify: { $0 is Passing ? .retry : .fail })
        #expect(value == "done")
        #expect(attempts.withLock { $0 } == [1, 2, 3])
    }

    @Test func aFinalFailureIsThrownAtOnce() async {
        let policy = RetryPolicy(attempts: 5, initialDelayMilliseconds: 1, maximumDelayMilliseconds: 1)
        let attempts = Mutex(0)
        await #expect(throws: Final.self) {
            try await policy.run({ _ in
                attempts.withLock { $0 += 1 }
                throw Final()
            }, classify: { $0 is Passing ? .retry : .fail })
        }
        #expect(attempts.withLock { $0 } == 1)
    }

    @Test func theLastErrorIsThrownWhenAttemptsRunOut() async {
        let policy = RetryPolicy(attempts: 3, initialDelayMilliseconds: 1, maximumDelayMilliseconds: 1)
        let attempts = Mutex(0)
        await #expect(throws: Passing.self) {
            try await policy.run({ _ in
                attempts.withLock { $0 += 1 }
                throw Passing()
            }, classify: { _ in .retry })
        }
        #expect(attempts.withLock { $0 } == 3)
    }

    @Test func aServersRetryAfterReplacesTheBackoff() async throws {
        let policy = RetryPolicy(attempts: 2, initialDelayMilliseconds: 60_000, maximumDelayMilliseconds: 60_000)
        let clock = ContinuousClock()
        let start = clock.now
        _ = try await policy.run({ attempt in
            if attempt == 1 { throw Passing() }
            return 1
        }, classify: { _ in .retryAfter(milliseconds: 5) })
        // The policy's own minute would have been waited otherwise.
        #expect(clock.now - start < .seconds(30))
    }
}

@Suite struct ScheduleParsingTests {
    @Test func durationsTakeUnits() throws {
        #expect(try Schedule.parseDuration("90s") == 90)
        #expect(try Schedule.parseDuration("15m") == 900)
        #expect(try Schedule.parseDuration("6h") == 21_600)
        #expect(try Schedule.parseDuration("1d") == 86_400)
        #expect(try Schedule.parseDuration("2.5") == 2.5)
        #expect(throws: ScheduleError.self) { try Schedule.parseDuration("soon") }
        #expect(throws: ScheduleError.self) { try Schedule.parseDuration("-5m") }
    }

    @Test func durationsReadAsSecondsAndMilliseconds() {
        #expect(Duration.milliseconds(1_500).seconds == 1.5)
        #expect(Duration.seconds(2).milliseconds == 2_000)
    }
}

@Suite struct ScheduleTests {
    func date(_ text: String) -> Date {
        var parts = tm()
        let numbers = text.split(whereSeparator: { !$0.isNumber }).compactMap { Int32($0) }
        parts.tm_year = numbers[0] - 1900
        parts.tm_mon = numbers[1] - 1
        parts.tm_mday = numbers[2]
        parts.tm_hour = numbers[3]
        parts.tm_min = numbers[4]
        parts.tm_isdst = -1
        return Date(timeIntervalSince1970: Double(mktime(&parts)))
    }

    @Test func cronNextRuns() throws {
        let everySixHours = try CronExpression("0 */6 * * *")
        #expect(everySixHours.next(after: date("2026-11-28 21:15")) == date("2026-11-29 00:00"))
        #expect(everySixHours.next(after: date("2026-11-29 00:00")) == date("2026-11-29 06:00"))
        let weekdays = try CronExpression("30 9 * * mon-fri")
        #expect(weekdays.next(after: date("2026-11-28 10:00")) == date("2026-11-30 09:30"))  // Saturday → Monday
        let monthly = try CronExpression("@monthly")
        #expect(monthly.next(after: date("2026-11-28 10:00")) == date("2026-12-01 00:00"))
        let list = try CronExpression("5,35 1-2 * feb *")
        #expect(list.next(after: date("2026-11-28 10:00")) == date("2027-02-01 01:05"))
        for bad in ["* * * *", "61 * * * *", "*/0 * * * *", "5-1 * * * *", "x * * * *"] {
            #expect(throws: ScheduleError.self) { try CronExpression(bad) }
        }
    }

    @Test func durations() throws {
        #expect(try Schedule.parseDuration("6h") == 21_600)
        #expect(try Schedule.parseDuration("30m") == 1_800)
        #expect(try Schedule.parseDuration("45") == 45)
        #expect(throws: ScheduleError.self) { try Schedule.parseDuration("soon") }
        #expect(Schedule.interval(seconds: 60).next(after: Date(timeIntervalSince1970: 0)) == Date(timeIntervalSince1970: 60))
        #expect(Schedule.once.next(after: Date()) == nil)
    }
}
