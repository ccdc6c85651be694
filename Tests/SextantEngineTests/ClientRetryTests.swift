import Foundation
import SextantClient
import SextantPayload
import SextantProtocol
import SextantSupport
import SextantTestSupport
import Testing

/// The client against an engine that is killed (kill -9) and started again on
/// the same data and socket: idempotent calls ride over the restart, other
/// calls fail at once with UNAVAILABLE, and nothing acknowledged is lost.
@Suite struct ClientRetryTests {
    @Test func idempotentCallsReconnectAndRetryAcrossAnEngineRestart() async throws {
        let directory = TemporaryDirectory("sextant-retry")
        defer { directory.remove() }
        let socket = directory.path + "/engine.sock"
        var engine = try EngineProcess(dataRoot: directory.path + "/data", extraArguments: ["--unix", socket])
        var configuration = ClientConfiguration(address: .unix(path: socket))
        configuration.connections = 2
        // Long enough to outlast a restart (an engine starts in well under a second here).
        configuration.retry = RetryPolicy(attempts: 60, initialDelayMilliseconds: 50, maximumDelayMilliseconds: 500)
        let client = try await SextantClient.connect(configuration)
        defer { engine.kill9() }
        let handle = try await client.createCollection(name: "retry", dimension: 4)
        let stored = vectors(50, dimension: 4, seed: 31)
        try await handle.upsert(ids: (0..<50).map { "r\($0)" }, vectors: stored, metadatas: (0..<50).map { ["n": .int(Int64($0))] })

        // Down: a call that is not idempotent fails at once, without waiting for the engine.
        engine.kill9()
        let started = ContinuousClock.now
        do {
            try await handle.add(ids: ["new"], vectors: [[1, 0, 0, 0]])
            Issue.record("an add reached a dead engine")
        } catch let error as SextantError {
            #expect(error.code == .unavailable)
        }
        #expect(ContinuousClock.now - started < .seconds(5), "no retries for a call that is not idempotent")

        // Back after a pause, on the same data and socket: reads and upserts made meanwhile succeed.
        let restart = Task {
            try await Task.sleep(for: .milliseconds(600))
            return try EngineProcess(dataRoot: directory.path + "/data", extraArguments: ["--unix", socket])
        }
        let records = try await handle.get(ids: ["r0", "r49"], include: [.metadatas])
        engine = try await restart.value
        #expect(records.map(\.id) == ["r0", "r49"], "the acknowledged records survived kill -9")
        #expect(records.last?.metadata == ["n": .int(49)])
        try await handle.upsert(ids: ["r50"], vectors: [[0, 0, 1, 0]])
        #expect(try await handle.count() == 51)

        // Down again, mid-flight: an upsert in flight when the engine dies is retried and lands once.
        engine.kill9()
        let second = Task {
            try await Task.sleep(for: .milliseconds(400))
            return try EngineProcess(dataRoot: directory.path + "/data", extraArguments: ["--unix", socket])
        }
        try await handle.upsert(ids: ["r51"], vectors: [[0, 0, 0, 1]])
        engine = try await second.value
        #expect(try await handle.count() == 52)
        #expect(try await handle.get(ids: ["r51"]).count == 1)
        await client.close()
        #expect(engine.stop() == 0)
    }
}
