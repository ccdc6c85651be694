import Foundation
import SextantObjectStore
import SextantTestSupport
import Testing

/// Conditional writes, as a lease in a bucket uses them, against a folder and
/// against a real S3-compatible server (moto): created only if absent,
/// replaced only if unchanged, and the ETag of a read is the one a write compares.
@Suite(.serialized) struct ConditionalWriteTests {
    static func exercise(_ store: any ObjectStore) async throws {
        let key = "log/LEASE"
        let first = try await store.write(Array("one".utf8), to: key, if: .absent)
        await #expect(throws: ObjectStoreError.self) { _ = try await store.write(Array("two".utf8), to: key, if: .absent) }
        let read = try await store.readVersioned(key, maximumBytes: 1_024)
        #expect(read.bytes == Array("one".utf8))
        #expect(read.etag == first)
        let second = try await store.write(Array("two".utf8), to: key, if: .matches(etag: first))
        #expect(second != first)
        do {
            _ = try await store.write(Array("three".utf8), to: key, if: .matches(etag: first))
            Issue.record("a write over a changed object went through")
        } catch let error as ObjectStoreError {
            #expect(error.kind == .preconditionFailed)
        }
        #expect(try await store.read(key, maximumBytes: 1_024) == Array("two".utf8))
        await #expect(throws: ObjectStoreError.self) { _ = try await store.write(Array("x".utf8), to: "log/none", if: .matches(etag: first)) }
        #expect(try await store.list(prefix: "log/").map(\.key) == [key])
    }

    @Test func aFolderWritesOnlyWhenTheConditionHolds() async throws {
        let directory = TemporaryDirectory("sextant-conditional")
        defer { directory.remove() }
        try await Self.exercise(try FolderStore(root: directory.path))
    }

    @Test func s3WritesOnlyWhenTheConditionHolds() async throws {
        let directory = TemporaryDirectory("sextant-conditional")
        defer { directory.remove() }
        let moto = try MotoServer(logPath: directory.file("moto.log"))
        defer { moto.stop() }
        let environment = moto.environment
        let store = try S3Store(bucket: "leases", prefix: "site/", settings: S3Settings(environment: environment))
        try await store.createBucket()
        try await Self.exercise(store)
    }

    /// Two writers racing for an absent object: exactly one wins.
    @Test func oneOfManyRacingCreatorsWins() async throws {
        let directory = TemporaryDirectory("sextant-conditional")
        defer { directory.remove() }
        let store = try FolderStore(root: directory.path)
        let winners = await withTaskGroup(of: Bool.self) { group in
            for index in 0..<16 {
                group.addTask { (try? await store.write(Array("w\(index)".utf8), to: "race", if: .absent)) != nil }
            }
            var count = 0
            for await won in group where won { count += 1 }
            return count
        }
        #expect(winners == 1)
    }
}
