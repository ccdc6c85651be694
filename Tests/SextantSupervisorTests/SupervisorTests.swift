import Foundation
import Logging
import SextantSupervisor
import SextantSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `sextant up`'s supervisor against real child processes.
@Suite struct SupervisorTests {
    @Test func aCrashingChildIsRestartedWithGrowingBackoff() async throws {
        var policy = RestartPolicy()
        policy.backoff = RetryPolicy(attempts: Int.max, initialDelayMilliseconds: 100, maximumDelayMilliseconds: 400)
        let supervisor = Supervisor(logger: Logger(label: "test.supervisor"), policy: policy)
        // A child that exits at once with a failure, every time.
        try supervisor.start(ChildSpec(name: "crasher", executable: "/bin/sh", arguments: ["-c", "exit 3"], stopTimeoutSeconds: 1))
        let deadline = Date().addingTimeInterval(20)
        while supervisor.launchTimes("crasher").count < 6 && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        supervisor.stopAll()
        let launches = supervisor.launchTimes("crasher")
        try #require(launches.count >= 6, "the child was restarted again and again")
        let gaps = zip(launches.dropFirst(), launches).map { $0.timeIntervalSince($1) }
        // Each wait is at least the policy's delay for that many failures (100, 200, 400, 400 ms, ...).
        for (number, gap) in gaps.prefix(5).enumerated() {
            let floor = Double(policy.backoff.delayMilliseconds(afterFailures: number + 1)) / 1_000
            #expect(gap >= floor * 0.9, "restart \(number + 1) came after \(gap) s, before its \(floor) s backoff")
        }
        #expect(gaps[2] > gaps[0], "the backoff grows")
        #expect(supervisor.restartCount("crasher") >= 5)
    }

    @Test func aChildThatRanLongEnoughStartsItsBackoffAfresh() async throws {
        var policy = RestartPolicy()
        policy.backoff = RetryPolicy(attempts: Int.max, initialDelayMilliseconds: 50, maximumDelayMilliseconds: 5_000)
        policy.healthyAfterSeconds = 0.2
        let supervisor = Supervisor(logger: Logger(label: "test.supervisor"), policy: policy)
        // Runs 0.4 s (longer than "healthy") before each exit: the count never builds up.
        try supervisor.start(ChildSpec(name: "steady", executable: "/bin/sh", arguments: ["-c", "sleep 0.4; exit 1"], stopTimeoutSeconds: 1))
        let deadline = Date().addingTimeInterval(20)
        while supervisor.launchTimes("steady").count < 4 && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        supervisor.stopAll()
        #expect(supervisor.launchTimes("steady").count >= 4)
        #expect(supervisor.restartCount("steady") == 1, "each exit after a healthy run counts as the first")
    }

    @Test func stopAllStopsChildrenInReverseOrderAndDoesNotRestartThem() async throws {
        let supervisor = Supervisor(logger: Logger(label: "test.supervisor"))
        try supervisor.start(ChildSpec(name: "first", executable: "/bin/sleep", arguments: ["30"], stopTimeoutSeconds: 2))
        try supervisor.start(ChildSpec(name: "second", executable: "/bin/sleep", arguments: ["30"], stopTimeoutSeconds: 2))
        let first = try #require(supervisor.pid("first"))
        let second = try #require(supervisor.pid("second"))
        supervisor.stopAll()
        #expect(kill(first, 0) != 0 && kill(second, 0) != 0, "both children are gone")
        try await Task.sleep(for: .milliseconds(300))
        #expect(supervisor.launchTimes("first").count == 1 && supervisor.launchTimes("second").count == 1)
    }
}
