import CSextantSystem
import Foundation
import SextantConcurrency
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct BackgroundPriorityTests {
    @Test func parsesIdleAndNiceValuesAndRejectsTheRest() {
        #expect(BackgroundPriority(parsing: "idle") == .idle)
        #expect(BackgroundPriority(parsing: "0") == .nice(0))
        #expect(BackgroundPriority(parsing: "19") == .nice(19))
        for bad in ["20", "-1", "", "IDLE", "nice", "10.5"] {
            #expect(BackgroundPriority(parsing: bad) == nil, "\(bad)")
        }
    }

    /// The priority reaches the kernel for the calling thread only, and
    /// `whileApplied` gives a borrowed thread its own priority back.
    @Test func appliesToTheCallingThreadAndRestores() async throws {
        let observed = try await onFreshThread { () -> [Int32] in
            var policy: Int32 = -1
            var niceness: Int32 = -1
            var seen: [Int32] = []
            _ = sx_get_thread_scheduling(&policy, &niceness)
            seen += [policy, niceness]
            BackgroundPriority.idle.whileApplied {
                _ = sx_get_thread_scheduling(&policy, &niceness)
                seen += [policy, BackgroundPriority.currentThreadIsBackground ? 1 : 0]
            }
            _ = sx_get_thread_scheduling(&policy, &niceness)
            seen += [policy, niceness]
            BackgroundPriority.nice(7).applyToCurrentThread()
            _ = sx_get_thread_scheduling(&policy, &niceness)
            seen += [policy, niceness, BackgroundPriority.currentThreadIsBackground ? 1 : 0]
            return seen
        }
        let start = observed[1]
        #expect(observed[0] == 0, "starts under SCHED_OTHER")
        #expect(observed[2] == 5 && observed[3] == 1, "SCHED_IDLE inside whileApplied, seen as background")
        #expect(observed[4] == 0 && observed[5] == start, "policy and nice value restored")
        #expect(observed[6] == 0 && observed[7] == max(7, start) && observed[8] == 1, "nice 7 applied")
    }

    /// With readers, a pacer whose work step has passed sleeps (a lower bound
    /// the kernel guarantees, not a timing claim).
    @Test func pacerPausesOnceItsStepHasPassed() {
        var busy = ReaderPacer(readers: true)
        let clock = ContinuousClock()
        let until = clock.now + .microseconds(Int64(ReaderPacer.workMicroseconds) + 50)
        while clock.now < until {}
        let busyTime = clock.measure { busy.step() }
        #expect(busyTime >= .microseconds(Int64(ReaderPacer.pauseMicroseconds)))
        #expect(!ReaderPacer(readers: false).readers)
    }

    /// Priorities stick to a thread: the test changes only one it owns.
    private func onFreshThread(_ body: @escaping @Sendable () -> [Int32]) async throws -> [Int32] {
        await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: body()) }.start()
        }
    }
}
