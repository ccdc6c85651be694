import Foundation
import SextantStorage
import SextantTestSupport
import Testing

/// Damage each kind of file and check the engine says which file, instead of serving wrong data.
@Suite struct CorruptionTests {
    /// A collection with one checkpointed generation and a WAL tail; returns its folder.
    private func populated(_ directory: TemporaryDirectory) async throws -> String {
        try await withEngine(directory) { engine in
            let (collection, _) = try await engine.create(CollectionConfiguration(name: "c", dimension: 8, metric: .l2))
            try await collection.write(.add(makeRecords(500)))
            try await waitIndexed(collection)
            try await collection.checkpoint()
            try await collection.write(.add(makeRecords(10, prefix: "tail")))
            try await collection.write(.add(makeRecords(10, prefix: "last")))
            return collection.directory
        }
    }

    private func flipByte(_ path: String, at fraction: Double) throws {
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        let size = try handle.seekToEnd()
        let offset = UInt64(Double(size - 1) * fraction)
        try handle.seek(toOffset: offset)
        let byte = try handle.read(upToCount: 1) ?? Data([0])
        try handle.seek(toOffset: offset)
        handle.write(Data([byte[0] ^ 0x5A]))
    }

    @Test(arguments: ["MANIFEST", "vectors.f16", "level0.u32", "nodes.bin", "upper.u32", "slots.bin", "heap.bin"])
    func damagedFileFailsOpenNamingIt(file: String) async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let collectionDirectory = try await populated(directory)
        let generation = try #require(FileManager.default.contentsOfDirectory(atPath: collectionDirectory).first { $0.hasPrefix("gen-") })
        let path = file == "MANIFEST" ? collectionDirectory + "/MANIFEST" : collectionDirectory + "/" + generation + "/" + file
        try flipByte(path, at: 0.5)
        do {
            _ = try StorageEngine(directory: directory.path)
            Issue.record("opened a collection with a damaged \(file)")
        } catch let error as StorageError {
            guard case .corrupted(let message) = error else { Issue.record("wrong error \(error)"); return }
            #expect(message.contains(path), "the error names the file: \(message)")
        }
    }

    @Test func truncatedDataFileFailsOpen() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let collectionDirectory = try await populated(directory)
        let generation = try #require(FileManager.default.contentsOfDirectory(atPath: collectionDirectory).first { $0.hasPrefix("gen-") })
        let path = collectionDirectory + "/" + generation + "/vectors.f16"
        let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        #expect(truncate(path, off_t(size - 100)) == 0)
        #expect(throws: StorageError.self) { _ = try StorageEngine(directory: directory.path) }
    }

    @Test func tornWALTailIsCutAtTheLastGoodEntry() async throws {
        let directory = TemporaryDirectory()
        defer { directory.remove() }
        let collectionDirectory = try await populated(directory)
        let walDirectory = collectionDirectory + "/wal"
        let segment = try #require(FileManager.default.contentsOfDirectory(atPath: walDirectory).sorted().last)
        let path = walDirectory + "/" + segment
        // Damage the last entry (the "last" batch); the "tail" batch before it must survive.
        try flipByte(path, at: 0.97)
        let before = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        try await withEngine(directory) { engine in
            let collection = try #require(engine.collection(named: "c"))
            #expect(collection.count == 510)
            #expect(try collection.get(ids: ["tail0", "tail9"]).count == 2)
            #expect(try collection.get(ids: ["last0"]).isEmpty)
        }
        let after = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        #expect(after < before, "the torn tail was truncated away")
        // Garbage appended after a clean tail is dropped the same way.
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
        handle.write(Data(repeating: 0xAB, count: 1000))
        try handle.close()
        try await withEngine(directory) { engine in #expect(engine.collection(named: "c")?.count == 510) }
    }
}
