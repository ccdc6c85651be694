import Foundation
import Logging
import SextantSupport
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One child process `sextant up` runs (the engine, the API, the worker...).
public struct ChildSpec: Sendable {
    public var name: String
    public var executable: String
    public var arguments: [String]
    /// How long to wait for it to exit after SIGTERM before SIGKILL.
    public var stopTimeoutSeconds: Double

    public init(name: String, executable: String, arguments: [String], stopTimeoutSeconds: Double = 30) {
        self.name = name
        self.executable = executable
        self.arguments = arguments
        self.stopTimeoutSeconds = stopTimeoutSeconds
    }
}

/// How the supervisor restarts a child that exits on its own.
public struct RestartPolicy: Sendable {
    /// Exponential backoff: 1 s doubling to 30 s by default.
    public var backoff = RetryPolicy(attempts: Int.max, initialDelayMilliseconds: 1_000, maximumDelayMilliseconds: 30_000)
    /// A child that ran this long before exiting starts its backoff afresh.
    public var healthyAfterSeconds = 60.0

    public init() {}
}

/// Runs child processes, restarts one that exits on its own (`RestartPolicy`:
/// exponential backoff, reset after a minute of good health), and stops them
/// in reverse start order: later children depend on earlier ones (the API on
/// the engine), so the engine stops last and can checkpoint.
public final class Supervisor: @unchecked Sendable {
    private struct Running {
        var spec: ChildSpec
        var process: Process?
        var restarts = 0
        var startedAt = Date()
        var launches: [Date] = []
    }

    private let children = Mutex<[Running]>([])
    private let stopping = Atomic<Bool>(false)
    private let logger: Logger
    public let policy: RestartPolicy
    /// Launch times kept per child, for `launchTimes`.
    static let launchHistory = 64

    public init(logger: Logger, policy: RestartPolicy = RestartPolicy()) {
        self.logger = logger
        self.policy = policy
    }

    /// Starts a child and keeps it running until `stopAll`.
    public func start(_ spec: ChildSpec) throws {
        let index = children.withLock { list -> Int in
            list.append(Running(spec: spec))
            return list.count - 1
        }
        try launch(index)
    }

    private func launch(_ index: Int) throws {
        let spec = children.withLock { $0[index].spec }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: spec.executable)
        process.arguments = spec.arguments
        process.terminationHandler = { [weak self] finished in self?.exited(index, status: finished.terminationStatus) }
        try process.run()
        children.withLock {
            let now = Date()
            $0[index].process = process
            $0[index].startedAt = now
            $0[index].launches.append(now)
            if $0[index].launches.count > Self.launchHistory { $0[index].launches.removeFirst() }
        }
        logger.notice("started \(spec.name) (pid \(process.processIdentifier))")
    }

    private func exited(_ index: Int, status: Int32) {
        guard !stopping.load(ordering: .acquiring) else { return }
        let (name, delay) = children.withLock { list -> (String, Double) in
            var child = list[index]
            if Date().timeIntervalSince(child.startedAt) > policy.healthyAfterSeconds { child.restarts = 0 }
            child.restarts += 1
            child.process = nil
            list[index] = child
            return (child.spec.name, Double(policy.backoff.delayMilliseconds(afterFailures: child.restarts)) / 1_000)
        }
        logger.error("\(name) exited with status \(status); restarting in \(String(format: "%.1f", delay)) s")
        DispatchQueue.global().asyncAfter(deadline: .now() + delay) { [self] in
            guard !stopping.load(ordering: .acquiring) else { return }
            do { try launch(index) } catch { logger.error("cannot restart \(name): \(error)") }
        }
    }

    public func restartCount(_ name: String) -> Int {
        children.withLock { $0.first { $0.spec.name == name }?.restarts ?? 0 }
    }

    /// When the child was started, oldest first (the last `launchHistory` starts).
    public func launchTimes(_ name: String) -> [Date] {
        children.withLock { $0.first { $0.spec.name == name }?.launches ?? [] }
    }

    public func pid(_ name: String) -> Int32? {
        children.withLock { $0.first { $0.spec.name == name }?.process?.processIdentifier }
    }

    /// Stops one child (SIGTERM, SIGKILL after its timeout) and does not restart it.
    public func stop(_ name: String) {
        let found = children.withLock { list -> (ChildSpec, Process)? in
            guard let index = list.firstIndex(where: { $0.spec.name == name }), let process = list[index].process else { return nil }
            list[index].process = nil
            list[index].spec.name = "(stopped) " + name
            return (list[index].spec, process)
        }
        guard let (spec, process) = found, process.isRunning else { return }
        process.terminationHandler = nil
        logger.notice("stopping \(name)")
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(spec.stopTimeoutSeconds)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            Self.awaitExit(process)
        }
    }

    /// SIGTERM to each child, last started first; SIGKILL after its timeout.
    public func stopAll() {
        stopping.store(true, ordering: .releasing)
        let running = children.withLock { $0 }
        for child in running.reversed() {
            guard let process = child.process, process.isRunning else { continue }
            logger.notice("stopping \(child.spec.name)")
            kill(process.processIdentifier, SIGTERM)
            let deadline = Date().addingTimeInterval(child.spec.stopTimeoutSeconds)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning {
                logger.error("\(child.spec.name) did not stop within \(Int(child.spec.stopTimeoutSeconds)) s; killing it")
                kill(process.processIdentifier, SIGKILL)
                Self.awaitExit(process)
            }
            logger.notice("\(child.spec.name) stopped (status \(process.isRunning ? "unknown" : "\(process.terminationStatus)"))")
        }
    }

    /// Waits for a SIGKILLed child by polling: `waitUntilExit()` spins a run
    /// loop and on Linux can miss an exit and wait forever. Bounded, since a
    /// killed process is gone within milliseconds unless the kernel is stuck.
    static func awaitExit(_ process: Process) {
        let deadline = Date().addingTimeInterval(30)
        while process.isRunning && Date() < deadline { usleep(5_000) }
    }
}
