import Foundation
import SextantClient
import SextantImport
import SextantJSON
import SextantPayload
import SextantTestSupport
import Testing

/// Moving in from ChromaDB: persist directories made by the real chromadb
/// 1.5.9 package (several collections, deletes, updates, upserts, a tail still
/// in Chroma's write-ahead queue, array metadata), read without Chroma, and a
/// running Chroma server read over REST; every record compared with what
/// Chroma's own client reads back.
@Suite(.serialized) struct ChromaImportTests {
    static func buildFixture(_ directory: TemporaryDirectory) throws -> (persist: String, dump: String) {
        let persist = directory.file("chroma")
        let dump = directory.file("chroma.json")
        for arguments in [["build", persist], ["dump", persist, dump]] {
            let (status, output) = try TestPython.run("tools/python/chroma_fixture.py", arguments, python: TestPython.chromaPath)
            try #require(status == 0, "\(output)")
        }
        return (persist, dump)
    }

    static func connect(_ engine: EngineProcess) async throws -> SextantClient {
        try await SextantClient.connect(ClientConfiguration(address: try EngineAddress(parsing: engine.address)))
    }

    /// Chroma's metadata as Sextant holds it: arrays as their JSON text.
    static func expectedMetadata(_ json: JSONValue?) -> Metadata {
        var metadata: Metadata = [:]
        for (key, value) in json?.objectValue ?? [:] {
            switch value {
            case .string(let text): metadata[key] = .string(text)
            case .int(let number): metadata[key] = .int(number)
            case .double(let number): metadata[key] = .double(number)
            case .bool(let flag): metadata[key] = .bool(flag)
            case .array: metadata[key] = .string(JSON.serialize(value))
            default: Issue.record("unexpected metadata value for \(key)")
            }
        }
        return metadata
    }

    /// Every collection and record of the dump is in the engine, equal (vectors
    /// to the float16 the engine stores them in).
    static func expectSameRecords(_ dumpPath: String, _ client: SextantClient) async throws {
        let dump = try JSON.parse(try String(contentsOfFile: dumpPath, encoding: .utf8))
        let collections = try #require(dump.arrayValue)
        #expect(collections.count == 3)
        for collection in collections {
            let name = try #require(collection["name"]?.stringValue)
            let records = try #require(collection["records"]?.arrayValue)
            let handle = try await client.getCollection(name: name)
            #expect(try await handle.count() == records.count, "\(name)")
            let stored = try await handle.get(limit: 100_000, include: [.documents, .metadatas, .vectors])
            let byID = Dictionary(uniqueKeysWithValues: stored.map { ($0.id, $0) })
            var mismatches: [String] = []
            for record in records {
                let id = try #require(record["id"]?.stringValue)
                guard let mine = byID[id] else {
                    mismatches.append("\(id) missing")
                    continue
                }
                if mine.document != record["document"]?.stringValue { mismatches.append("\(id) document \(String(describing: mine.document))") }
                if (mine.metadata ?? [:]) != expectedMetadata(record["metadata"]) {
                    mismatches.append("\(id) metadata \(String(describing: mine.metadata)) vs \(String(describing: record["metadata"]))")
                }
                var expected = (record["embedding"]?.arrayValue ?? []).compactMap { $0.doubleValue }.map { Float($0) }
                if handle.info.metric == .cosine {  // a cosine collection stores the direction
                    let norm = expected.reduce(0) { $0 + $1 * $1 }.squareRoot()
                    expected = expected.map { $0 / norm }
                }
                let vector = mine.vector ?? []
                if vector.count != expected.count
                    || zip(vector, expected).contains(where: { abs($0 - $1) > 1e-3 * max(1, abs($1)) })
                {
                    mismatches.append("\(id) vector")
                }
            }
            #expect(mismatches.isEmpty, "\(name): \(mismatches.prefix(5))")
        }
    }

    static func runImport(_ arguments: [String]) throws -> (Int32, String) {
        let (status, out, err) = try SextantBinary.run(["import"] + arguments + ["--json"])
        return (status, out + err)
    }

    @Test func persistDirectoryImportsEveryRecordAndIsIdempotent() async throws {
        let directory = TemporaryDirectory("sextant-import")
        defer { directory.remove() }
        let (persist, dump) = try Self.buildFixture(directory)
        let engine = try EngineProcess(dataRoot: directory.file("engine"))
        defer { engine.stop() }

        let (status, output) = try Self.runImport(["--from-chroma", persist, "--engine", engine.address])
        #expect(status == 0, "\(output)")
        #expect(output.contains(#""collection":"tenders""#) && output.contains(#""state":"imported""#), "\(output)")
        // The fixture stores five array values in queued records, kept as JSON text and said so.
        #expect(output.contains(#""arrays_as_text":145"#), "\(output)")
        let client = try await Self.connect(engine)
        try await Self.expectSameRecords(dump, client)

        // Settings carried over: the distance space, the user's metadata, the embedder Chroma names.
        let tenders = try await client.getCollection(name: "tenders")
        #expect(tenders.info.metric == .cosine)
        #expect(tenders.info.metadata["source"] == .string("feed"))
        #expect(tenders.info.metadata["sextant:embedder"] == .string("all-MiniLM-L6-v2@1"))
        #expect(tenders.info.textIndex != nil)
        let notes = try await client.getCollection(name: "notes")
        #expect(notes.info.metric == .l2)
        #expect(notes.info.metadata["sextant:embedder"] == nil)

        // Again: nothing to do, nothing changed.
        let (again, againOutput) = try Self.runImport(["--from-chroma", persist, "--engine", engine.address])
        #expect(again == 0, "\(againOutput)")
        #expect(againOutput.components(separatedBy: #""state":"up_to_date""#).count == 4, "\(againOutput)")
        try await Self.expectSameRecords(dump, client)

        // A same-named collection the import did not make is refused, not overwritten.
        let other = try TemporaryDirectory("sextant-import-other")
        defer { other.remove() }
        let engine2 = try EngineProcess(dataRoot: other.file("engine"))
        defer { engine2.stop() }
        let client2 = try await Self.connect(engine2)
        let mine = try await client2.createCollection(name: "notes", dimension: 8)
        _ = try await mine.add(ids: ["mine"], vectors: [[Float](repeating: 1, count: 8)])
        // The .tar.gz of the directory, as seed 000 keeps it in cloud storage.
        let archive = directory.file("chroma_db.tar.gz")
        let tar = Process()
        tar.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        tar.arguments = ["tar", "-czf", archive, "-C", directory.path, "chroma"]
        try tar.run()
        tar.waitForExit()
        let (refused, refusedOutput) = try Self.runImport(["--from-chroma", archive, "--engine", engine2.address])
        #expect(refused == 2, "\(refusedOutput)")
        #expect(refusedOutput.contains("already holds records that no import made"), "\(refusedOutput)")
        #expect(try await mine.count() == 1)
        #expect(try await client2.getCollection(name: "tenders").count() == 3_115)
        await client.close()
        await client2.close()
    }

    /// An import cut off part way resumes from its recorded position.
    @Test func anInterruptedImportResumes() async throws {
        let directory = TemporaryDirectory("sextant-import")
        defer { directory.remove() }
        let (persist, dump) = try Self.buildFixture(directory)
        let engine = try EngineProcess(dataRoot: directory.file("engine"))
        defer { engine.stop() }
        let client = try await Self.connect(engine)
        let source = try ChromaPersistDirectory(path: persist)
        var options = ChromaImporter.Options()
        options.batchSize = 250
        options.progressIntervalSeconds = 0
        let failing = FailingSource(inner: source, failAtPosition: 2_000)
        await #expect(throws: ChromaImportError.self) {
            _ = try await ChromaImporter(client: client, source: failing, options: options, log: { _ in }).run()
        }
        // Collections go in name order: "notes" is whole, "tenders" stopped part way.
        #expect(try await client.getCollection(name: "notes").count() == 400)
        let partial = try await client.getCollection(name: "tenders").count()
        #expect(partial > 0 && partial < 3_115, "\(partial)")
        let outcomes = try await ChromaImporter(client: client, source: source, options: options, log: { _ in }).run()
        let resumed = try #require(outcomes.first { $0.name == "tenders" })
        #expect(resumed.state == .imported)
        #expect(resumed.resumedFrom > 0, "\(outcomes)")
        try await Self.expectSameRecords(dump, client)
        await client.close()
    }

    /// A running Chroma server, read over its REST API.
    @Test func runningChromaServerImportsOverREST() async throws {
        let directory = TemporaryDirectory("sextant-import")
        defer { directory.remove() }
        let (persist, dump) = try Self.buildFixture(directory)
        let chroma = try BackgroundServer(
            python: ["-c", "import sys; from chromadb.cli.cli import app; sys.argv[0] = 'chroma'; app()", "run", "--path", persist,
                     "--host", "127.0.0.1", "--port", "{port}"],
            logPath: directory.file("chroma.log"), interpreter: TestPython.chromaPath)
        defer { chroma.stop() }
        let engine = try EngineProcess(dataRoot: directory.file("engine"))
        defer { engine.stop() }
        // A server that is not there: a clear message and a failed exit, in seconds.
        let started = Date()
        let (absent, absentOutput) = try Self.runImport(["--from-chroma", "http://127.0.0.1:\(freePort())", "--engine", engine.address])
        #expect(absent != 0 && absentOutput.contains("Chroma source"), "\(absentOutput)")
        #expect(Date().timeIntervalSince(started) < 30, "a refused connection is not retried for 90 s")
        let (status, output) = try Self.runImport(["--from-chroma", chroma.url, "--engine", engine.address, "--batch", "700"])
        #expect(status == 0, "\(output)")
        let client = try await Self.connect(engine)
        try await Self.expectSameRecords(dump, client)
        #expect(try await client.getCollection(name: "tenders").info.metadata["sextant:embedder"] == .string("all-MiniLM-L6-v2@1"))
        await client.close()
    }

    @Test func picklesOfEveryProtocolRead() throws {
        let script = """
            from pickle import dumps
            from sys import stdout
            class PersistentData:
                def __init__(self):
                    self.dimensionality = 384
                    self.total_elements_added = 3
                    self.max_seq_id = None
                    self.id_to_label = {"a": 1, "b": 2, "c": 70000, "big": 2**40}
                    self.label_to_id = {1: "a", 2: "b"}
                    self.id_to_seq_id = {"a": -5, "b": 3.5}
            for protocol in (2, 3, 4, 5):
                stdout.write(dumps(PersistentData(), protocol=protocol).hex() + "\\n")
            stdout.write(dumps({"id_to_label": {"x": 7}, "flags": [True, False, None, (1, "t")]}, protocol=3).hex() + "\\n")
            """
        let (status, output) = try TestPython.run("-c", [script])
        try #require(status == 0, "\(output)")
        let lines = output.split(separator: "\n").map(String.init)
        try #require(lines.count == 5)
        for line in lines.prefix(4) {
            let value = try Pickle.parse(hexBytes(line))
            guard case .object(let name, _) = value else {
                Issue.record("not an instance: \(value)")
                continue
            }
            #expect(name.hasSuffix("PersistentData"))
            let map = try #require(value["id_to_label"]?.entries)
            #expect(map.count == 4)
            #expect(value["id_to_label"]?.entries?.first { $0.0 == .string("big") }?.1 == .int(1 << 40))
            #expect(value["id_to_seq_id"]?.entries?.first { $0.0 == .string("a") }?.1 == .int(-5))
            #expect(value["id_to_seq_id"]?.entries?.first { $0.0 == .string("b") }?.1 == .double(3.5))
            #expect(value["max_seq_id"] == PickleValue.none)
        }
        let plain = try Pickle.parse(hexBytes(lines[4]))
        #expect(plain["id_to_label"]?.entries?.first?.1 == .int(7))
        #expect(plain["flags"] == .list([.bool(true), .bool(false), .none, .tuple([.int(1), .string("t")])]))

        // Damage: truncated, an unknown opcode, a STOP with a stack left over; each a typed error, never a crash.
        let good = try hexBytes(lines[0])
        for cut in stride(from: 0, to: good.count - 1, by: 7) {
            #expect(throws: PickleError.self) { try Pickle.parse(Array(good[..<cut])) }
        }
        #expect(throws: PickleError.self) { try Pickle.parse([0x80, 0x02, 0xFF, 0x2E]) }
        #expect(throws: PickleError.self) { try Pickle.parse([0x80, 0x02, 0x4E, 0x4E, 0x2E]) }
        // A class is named, never called: REDUCE on os.system builds a name and nothing runs.
        let hostile = Array("cos\nsystem\n(S'true'\ntR.".utf8)
        #expect(throws: PickleError.self) { try Pickle.parse(hostile) }
    }

    @Test func hnswHeadersOfBothLayoutsRead() throws {
        func header(version: Bool, count: UInt64, elementSize: UInt64, labelOffset: UInt64, vectorOffset: UInt64) -> [UInt8] {
            var bytes: [UInt8] = version ? [1, 0, 0, 0] : []
            for value in [0, 4_096, count, elementSize, labelOffset, vectorOffset] as [UInt64] {
                bytes += withUnsafeBytes(of: value.littleEndian, Array.init)
            }
            bytes += [UInt8](repeating: 0, count: 48)
            return bytes
        }
        let modern = try HNSWLibVectors.header(header(version: true, count: 10, elementSize: 172, labelOffset: 164, vectorOffset: 132))
        #expect(modern.elementCount == 10 && modern.elementSizeBytes == 172 && modern.labelOffsetBytes == 164 && modern.vectorOffsetBytes == 132)
        let old = try HNSWLibVectors.header(header(version: false, count: 3, elementSize: 1_676, labelOffset: 1_668, vectorOffset: 132))
        #expect(old.elementCount == 3)
        #expect(throws: ChromaImportError.self) {
            try HNSWLibVectors.header(header(version: true, count: 10, elementSize: 100, labelOffset: 164, vectorOffset: 132))
        }
        #expect(throws: ChromaImportError.self) { try HNSWLibVectors.header([UInt8](repeating: 0, count: 50)) }
    }
}

func hexBytes(_ text: String) throws -> [UInt8] {
    let characters = Array(text.utf8)
    return try stride(from: 0, to: characters.count - 1, by: 2).map { index in
        guard let byte = UInt8(String(decoding: characters[index...index + 1], as: UTF8.self), radix: 16) else { throw PickleError("bad hex") }
        return byte
    }
}

/// A source that fails once an import reaches a position, as a cut connection or a killed process would.
struct FailingSource: ChromaSource {
    let inner: ChromaPersistDirectory
    let failAtPosition: Int
    var description: String { inner.description }
    func collections() async throws -> [ChromaCollection] { try await inner.collections() }
    func version(_ collection: ChromaCollection) async throws -> String { try await inner.version(collection) }
    func page(_ collection: ChromaCollection, from position: Int, limit: Int) async throws -> ChromaPage {
        if collection.name == "tenders" && position >= failAtPosition { throw ChromaImportError.source("cut off at \(position)") }
        return try await inner.page(collection, from: position, limit: limit)
    }
}
