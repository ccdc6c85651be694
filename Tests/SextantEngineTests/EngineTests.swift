import Foundation
import NIOCore
import SextantClient
import SextantProtocol
import SextantTestSupport
import Testing

#if canImport(Glibc)
import Glibc
import SextantPayload
#endif

/// Starts a real engine process, connects a client, runs `body`, stops the engine.
func withEngine<T>(arguments: [String] = [], token: String? = nil, connections: Int = 2,
                   _ body: (EngineProcess, SextantClient) async throws -> T) async throws -> T {
    let directory = TemporaryDirectory("sextant-engine")
    defer { directory.remove() }
    let engine = try EngineProcess(dataRoot: directory.path, extraArguments: arguments)
    var configuration = ClientConfiguration(address: try EngineAddress(parsing: engine.address), token: token)
    configuration.connections = connections
    let client = try await SextantClient.connect(configuration)
    do {
        let result = try await body(engine, client)
        await client.close()
        #expect(engine.stop() == 0, "engine exits 0 on SIGTERM")
        return result
    } catch {
        await client.close()
        engine.stop()
        Issue.record("engine log:\n\(engine.log.suffix(3_000))")
        throw error
    }
}

func vectors(_ count: Int, dimension: Int, seed: UInt64) -> [[Float]] {
    randomVectors(count: count, dimensions: dimension, seed: seed)
}

func expectCode(_ code: StatusCode, _ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async {
    do {
        try await body()
        Issue.record("expected \(code), got success", sourceLocation: sourceLocation)
    } catch let error as SextantError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected SextantError \(code), got \(error)", sourceLocation: sourceLocation)
    }
}

@Suite struct EngineProtocolTests {
    @Test func collectionsAndRecordsThroughTheClient() async throws {
        try await withEngine { engine, client in
            #expect(try await client.heartbeat() > 0)
            let info = try await client.serverInfo()
            #expect(info.allocator.hasPrefix("jemalloc"))
            let handle = try await client.createCollection(name: "docs", dimension: 8, metric: .l2, metadata: ["team": .string("a")])
            #expect(handle.info.metadata == ["team": .string("a")])
            let again = try await client.createCollection(name: "docs", dimension: 8, getOrCreate: true)
            #expect(again.id == handle.id)
            await expectCode(.alreadyExists) { _ = try await client.createCollection(name: "docs", dimension: 8) }
            await expectCode(.notFound) { _ = try await client.getCollection(name: "nope") }
            await expectCode(.invalidArgument) { _ = try await client.createCollection(name: "bad name!", dimension: 8) }

            let data = vectors(200, dimension: 8, seed: 1)
            let ids = (0..<200).map { "id\($0)" }
            let metadatas: [Metadata?] = (0..<200).map { ["n": .int(Int64($0)), "kind": .string($0 % 2 == 0 ? "even" : "odd")] }
            let result = try await handle.add(ids: ids, vectors: data, documents: ids.map { "text of \($0)" }, metadatas: metadatas)
            #expect(result.affected == 200 && result.lsn >= 1)
            #expect(try await handle.count() == 200)
            await expectCode(.alreadyExists) { try await handle.add(ids: ["id5"], vectors: [data[0]]) }
            await expectCode(.invalidArgument) { try await handle.upsert(ids: ["x"], vectors: [[1, 2, 3]]) }
            await expectCode(.invalidArgument) { try await handle.upsert(ids: ["x"], vectors: [[1, .nan, 0, 0, 0, 0, 0, 0]]) }
            await expectCode(.invalidArgument) { try await handle.upsert(ids: ["y", "y"], vectors: [data[0], data[1]]) }
            await expectCode(.invalidArgument) { try await handle.upsert(ids: [""], vectors: [data[0]]) }
            await expectCode(.invalidArgument) { try await handle.upsert(ids: [String(repeating: "z", count: 5_000)], vectors: [data[0]]) }
            #expect(try await handle.count() == 200, "nothing of a refused batch was applied")

            // get: by ids in order, filters, include, offset/limit
            let got = try await handle.get(ids: ["id3", "missing", "id1"], include: [.documents, .metadatas, .vectors])
            #expect(got.map(\.id) == ["id3", "id1"])
            #expect(got[0].document == "text of id3")
            #expect(got[0].metadata == ["n": .int(3), "kind": .string("odd")])
            #expect(got[0].vector?.count == 8)
            let odd = try await handle.get(where: .and([.eq("kind", .string("odd")), .lt("n", .int(10))]))
            #expect(odd.map(\.id) == ["id1", "id3", "id5", "id7", "id9"])
            let notIn = try await handle.get(where: .nin("n", (0..<198).map { .int(Int64($0)) }))
            #expect(Set(notIn.map(\.id)) == ["id198", "id199"])
            #expect(try await handle.get(whereDocument: .contains("of id19"), limit: 100).count == 11)
            #expect(try await handle.get(whereDocument: .regex(DocumentRegex("of id19\\d$")), limit: 100).count == 10)
            #expect(try await handle.get(whereDocument: .notRegex(DocumentRegex("[0-9]{2}$")), limit: 300).count == 10)
            await #expect(throws: SextantError.self) { try await handle.get(whereDocument: .regex(DocumentRegex("(unclosed"))) }
            #expect(try await handle.get(limit: 5, offset: 10).map(\.id) == (10..<15).map { "id\($0)" })

            // query: nearest first, include, filters never returning fewer than k that match
            let hits = try await handle.query(vectors: [data[42], data[7]], k: 3, include: [.distances, .documents])
            #expect(hits.count == 2)
            #expect(hits[0].first?.id == "id42" && hits[1].first?.id == "id7")
            #expect(hits[0].first?.distance ?? 1 < 1e-3)
            #expect(hits[0].first?.metadata == nil)
            let filtered = try await handle.query(vectors: [data[0]], k: 50, where: .eq("kind", .string("even")))
            #expect(filtered[0].count == 50 && filtered[0].allSatisfy { $0.metadata?["kind"] == .string("even") })
            let sparse = try await handle.query(vectors: [data[0]], k: 10, where: .in("n", [.int(150), .int(160)]))
            #expect(Set(sparse[0].map(\.id)) == ["id150", "id160"])
            await expectCode(.invalidArgument) { _ = try await handle.query(vectors: [data[0]], k: 5, where: .gt("kind", .string("x"))) }
            await expectCode(.invalidArgument) { _ = try await handle.query(vectors: [data[0]], k: 0) }

            // update (fields left nil stay), delete by ids and by filter
            try await handle.update(ids: ["id2"], documents: ["changed"])
            let updated = try await handle.get(ids: ["id2"])
            #expect(updated.first?.document == "changed" && updated.first?.metadata?["n"] == .int(2))
            await expectCode(.notFound) { try await handle.update(ids: ["ghost"], documents: ["x"]) }
            #expect(try await handle.update(ids: ["ghost"], documents: ["x"], ignoreMissing: true).affected == 0)
            #expect(try await handle.delete(ids: ["id0", "id1", "ghost"]) == 2)
            #expect(try await handle.delete(where: .gte("n", .int(190))) == 10)
            #expect(try await handle.count() == 188)
            let renamed = try await handle.modify(name: "docs2", metadata: ["team": .string("b")])
            #expect(renamed.name == "docs2")
            #expect(try await client.listCollections().collections.map(\.name) == ["docs2"])
            #expect(try await client.stats().first?.liveRecords == 188)
            try await client.deleteCollection(name: "docs2")
            #expect(try await client.listCollections().total == 0)
        }
    }

    /// Also with --reads-first, where the writer's batches wait for the indexer
    /// past 2,048 unindexed records while the readers run.
    @Test(arguments: [[], ["--reads-first"]])
    func acknowledgedWritesAreVisibleAndReadsRunDuringWrites(engineArguments: [String]) async throws {
        try await withEngine(arguments: engineArguments, connections: 4) { _, client in
            let handle = try await client.createCollection(name: "live", dimension: 32, metric: .cosine)
            let data = vectors(6_000, dimension: 32, seed: 3)
            let writer = Task {
                for start in stride(from: 0, to: 6_000, by: 500) {
                    let range = start..<(start + 500)
                    _ = try await handle.upsert(ids: range.map { "r\($0)" }, vectors: Array(data[range]))
                    // A batch acknowledged is visible to every query that starts after the ack.
                    let probe = start + 250
                    let hits = try await handle.query(vectors: [data[probe]], k: 1)
                    #expect(hits[0].first?.id == "r\(probe)")
                    #expect(try await handle.get(ids: ["r\(start + 499)"]).count == 1)
                }
            }
            // Readers keep going the whole time and never fail.
            let readers = (0..<4).map { reader in
                Task {
                    var rounds = 0
                    while !writer.isCancelled, rounds < 400 {
                        let hits = try await handle.query(vectors: [data[(rounds * 7 + reader) % 6_000]], k: 5)
                        #expect(hits[0].count <= 5)
                        rounds += 1
                    }
                    return rounds
                }
            }
            try await writer.value
            for reader in readers { #expect(try await reader.value == 400) }
            #expect(try await handle.count() == 6_000)
        }
    }

    @Test func manyRequestsInFlightOnOneConnectionComeBackMatched() async throws {
        try await withEngine(connections: 1) { _, client in
            let handle = try await client.createCollection(name: "pipe", dimension: 16, metric: .l2)
            let data = vectors(2_000, dimension: 16, seed: 4)
            try await handle.add(ids: (0..<2_000).map { "p\($0)" }, vectors: data)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<500 {
                    group.addTask {
                        // A mix of cheap and heavy requests, so responses finish out of order.
                        if index % 10 == 0 {
                            let all = try await handle.get(limit: 2_000)
                            #expect(all.count == 2_000)
                        } else {
                            let hits = try await handle.query(vectors: [data[index]], k: 1)
                            #expect(hits[0].first?.id == "p\(index)")
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
    }

    @Test func callersOnTheClientsEventLoopsStayThere() async throws {
        try await withEngine(connections: 2) { _, client in
            #expect(client.executors.count >= 1)
            let handle = try await client.createCollection(name: "local", dimension: 16, metric: .l2)
            let data = vectors(500, dimension: 16, seed: 5)
            try await handle.add(ids: (0..<500).map { "l\($0)" }, vectors: data)
            let executors = client.executors
            let stayed = try await withThrowingTaskGroup(of: Bool.self) { group in
                for index in 0..<64 {
                    let executor = executors[index % executors.count]
                    group.addTask(executorPreference: executor) {
                        var onLoop = executor.eventLoop.inEventLoop
                        for step in 0..<20 {
                            let row = (index * 20 + step) % 500
                            let hits = try await handle.query(vectors: [data[row]], k: 1)
                            #expect(hits[0].first?.id == "l\(row)")
                            // Resumed by the reply on the same thread, not handed to another executor.
                            onLoop = onLoop && executor.eventLoop.inEventLoop
                        }
                        return onLoop
                    }
                }
                return try await group.reduce(true) { $0 && $1 }
            }
            #expect(stayed, "every task ran on its event loop before and after each call")
        }
    }

    @Test func gracefulShutdownCheckpointsAndRestartsClean() async throws {
        let directory = TemporaryDirectory("sextant-engine")
        defer { directory.remove() }
        let data = vectors(1_000, dimension: 8, seed: 5)
        do {
            let engine = try EngineProcess(dataRoot: directory.path)
            let client = try await SextantClient.connect(to: engine.address)
            let handle = try await client.createCollection(name: "keep", dimension: 8, metric: .l2)
            try await handle.add(ids: (0..<1_000).map { "k\($0)" }, vectors: data)
            await client.close()
            #expect(engine.stop() == 0)
            #expect(engine.log.contains("checkpointing 1 collections"))
        }
        let engine = try EngineProcess(dataRoot: directory.path)
        let client = try await SextantClient.connect(to: engine.address)
        let stats = try await client.stats()
        #expect(stats.first?.liveRecords == 1_000)
        #expect(stats.first?.walBytes == 0, "the shutdown checkpoint left no WAL to replay")
        #expect(try await client.getCollection(name: "keep").query(vectors: [data[99]], k: 1)[0].first?.id == "k99")
        await client.close()
        #expect(engine.stop() == 0)
    }

    @Test func killNineLosesNoAcknowledgedWrite() async throws {
        let directory = TemporaryDirectory("sextant-engine")
        defer { directory.remove() }
        let data = vectors(3_000, dimension: 8, seed: 6)
        var acknowledged = 0
        do {
            let engine = try EngineProcess(dataRoot: directory.path)
            let client = try await SextantClient.connect(to: engine.address)
            let handle = try await client.createCollection(name: "crash", dimension: 8, metric: .l2)
            for start in stride(from: 0, to: 3_000, by: 300) {
                try await handle.add(ids: (start..<(start + 300)).map { "c\($0)" }, vectors: Array(data[start..<(start + 300)]))
                acknowledged += 300
            }
            engine.kill9()
            await client.close()
        }
        let engine = try EngineProcess(dataRoot: directory.path)
        let client = try await SextantClient.connect(to: engine.address)
        #expect(try await client.getCollection(name: "crash").count() == acknowledged)
        await client.close()
        engine.stop()
    }
}

@Suite struct EngineSecurityTests {
    @Test func tokenIsRequiredWhenConfiguredAndNeverLogged() async throws {
        let directory = TemporaryDirectory("sextant-engine")
        defer { directory.remove() }
        let tokenFile = directory.file("token")
        let secret = "s3cret-\(UUID().uuidString)"
        try secret.write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let engine = try EngineProcess(dataRoot: directory.path + "/data", extraArguments: ["--token-file", tokenFile])
        defer { engine.stop() }
        do {
            _ = try await SextantClient.connect(ClientConfiguration(address: try EngineAddress(parsing: engine.address)))
            Issue.record("connected without the token")
        } catch let error as SextantError {
            #expect(error.code == .unauthenticated)
        }
        do {
            _ = try await SextantClient.connect(ClientConfiguration(address: try EngineAddress(parsing: engine.address), token: "wrong"))
            Issue.record("connected with a wrong token")
        } catch let error as SextantError {
            #expect(error.code == .unauthenticated)
        }
        let client = try await SextantClient.connect(ClientConfiguration(address: try EngineAddress(parsing: engine.address), token: secret))
        #expect(try await client.heartbeat() > 0)
        await client.close()
        #expect(engine.stop() == 0)
        #expect(!engine.log.contains(secret), "the token never reaches the log")
    }

    @Test func refusesNonLoopbackWithoutToken() throws {
        let directory = TemporaryDirectory("sextant-engine")
        defer { directory.remove() }
        let (status, _, stderr) = try SextantBinary.run(["engine", "--data", directory.path, "--listen", "0.0.0.0:0"])
        #expect(status != 0)
        #expect(stderr.contains("without a token"))
    }
}
