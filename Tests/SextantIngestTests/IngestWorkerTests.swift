import AsyncHTTPClient
import Foundation
import NIOCore
import SextantClient
import SextantIngest
import SextantObjectStore
import SextantPayload
import SextantSQLite
import SextantTestSupport
import Testing

/// The worker as users run it: the `sextant ingest` process against a real
/// engine process, with real S3 (moto), HTTP and model stand-in servers.
@Suite(.serialized) struct IngestWorkerTests {
    static let mapping = TestDataset.packageRoot + "/tools/mappings/debian-minilm.json"
    static var vectors: String { TestDataset.file("base.fvecs") }
    static func batch(_ k: Int) -> String { TestDataset.file("csv/batch_\(k).csv") }

    func ingest(_ root: String, _ engine: EngineProcess, _ arguments: [String], environment: [String: String] = [:]) throws
        -> (status: Int32, summary: IngestSummary?, stderr: String)
    {
        let (status, out, err) = try SextantBinary.run(
            ["ingest", "--data", root, "--engine", engine.address, "--once", "--json", "--no-progress"] + arguments,
            environment: environment)
        let summary = out.split(separator: "\n").last.flatMap { try? JSONDecoder().decode(IngestSummary.self, from: Data($0.utf8)) }
        return (status, summary, err)
    }

    /// Every id of a CSV file, read with the worker's own reader.
    func ids(_ path: String) throws -> [String] {
        var reader = try CSVReader(path: path)
        defer { reader.close() }
        _ = try reader.next()
        var ids: [String] = []
        while let record = try reader.next() { ids.append(record.fields[0]) }
        return ids
    }

    func expectAllPresent(_ collection: CollectionHandle, _ ids: [String]) async throws {
        for start in stride(from: 0, to: ids.count, by: 1_000) {
            let chunk = Array(ids[start..<min(start + 1_000, ids.count)])
            let found = Set(try await collection.get(ids: chunk, include: []).map(\.id))
            let missing = chunk.filter { !found.contains($0) }
            #expect(missing.isEmpty, "\(missing.count) ids missing, first: \(missing.prefix(3))")
        }
    }

    @Test func sharedBatchesIngestWithZeroRowsLostAndOnlyOnce() async throws {
        let directory = TemporaryDirectory("sextant-ingest")
        defer { directory.remove() }
        let engine = try EngineProcess(dataRoot: directory.file("root"))
        defer { engine.stop() }
        let inbox = directory.file("inbox")
        try FileManager.default.createDirectory(atPath: inbox, withIntermediateDirectories: true)
        for k in 1...4 { try FileManager.default.copyItem(atPath: Self.batch(k), toPath: inbox + "/batch_\(k).csv") }
        let run = try ingest(directory.file("root"), engine,
                             ["--collection", "debian", "--source", inbox, "--mapping", Self.mapping, "--vectors", Self.vectors])
        #expect(run.status == 0, "\(run.stderr.suffix(2_000))")
        #expect(run.summary?.rowsIngested == 40_000)
        #expect(run.summary?.rowsQuarantined == 0)
        #expect(run.summary?.files == 4)
        let client = try await SextantClient.connect(to: engine.address)
        let collection = try await client.getCollection(name: "debian")
        #expect(try await collection.count() == 40_000)
        #expect(collection.info.metadata["sextant:embedder"] == .string("all-MiniLM-L6-v2@1"))
        var expected: [String] = []
        for k in 1...4 { expected += try ids(Self.batch(k)) }
        try await expectAllPresent(collection, expected)
        // The stored vector is the fvecs row of its CSV row (float16 precision).
        let curl = try await collection.get(ids: ["curl"], include: [.vectors, .metadatas, .documents]).first
        let row = (expected.firstIndex(of: "curl") ?? 0)
        let reference = try PrecomputedVectors(path: Self.vectors, dimension: 384).vectors(first: row, count: 1)[0]
        let stored = curl?.vector ?? []
        #expect(stored.count == 384)
        let dot = zip(stored, reference).reduce(Float(0)) { $0 + $1.0 * $1.1 }
        #expect(dot > 0.999)
        #expect(curl?.metadata?["installed_size"] == .int(489))
        #expect(curl?.document?.hasPrefix("command line tool for transferring data with URL syntax. curl is") == true)
        #expect(FileManager.default.fileExists(atPath: inbox + "/done/batch_4.csv"))

        // The same file again (same bytes) is recognised by checksum and skipped.
        try FileManager.default.copyItem(atPath: Self.batch(2), toPath: inbox + "/again.csv")
        var mapping = try String(contentsOfFile: Self.mapping, encoding: .utf8)
        mapping = mapping.replacingOccurrences(of: "\"batch_1.csv\": 0", with: "\"again.csv\": 10000, \"batch_1.csv\": 0")
        try mapping.write(toFile: directory.file("mapping.json"), atomically: true, encoding: .utf8)
        let again = try ingest(directory.file("root"), engine, ["--collection", "debian", "--source", inbox, "--mapping",
                                                                directory.file("mapping.json"), "--vectors", Self.vectors])
        #expect(again.status == 0)
        // A differently named copy is a different file; the rows are upserts, so the count stays.
        #expect(try await collection.count() == 40_000)
        await client.close()
    }

    /// The first hour of a tenders feed: a file with no mapping and no `id`
    /// column is understood (typed values, dates as epoch seconds beside the
    /// text), the inferred mapping is written for the user, a file that
    /// cannot be read is put aside once with its reason, and `--once` says so
    /// in its exit status.
    @Test func aFeedWithoutAMappingIsUnderstoodAndABadFileIsPutAside() async throws {
        let directory = TemporaryDirectory("sextant-ingest")
        defer { directory.remove() }
        let engine = try EngineProcess(dataRoot: directory.file("root"))
        defer { engine.stop() }
        let inbox = directory.file("inbox")
        try FileManager.default.createDirectory(atPath: inbox, withIntermediateDirectories: true)
        var lines = ["tender_id,title,description,buyer,deadline,value_eur"]
        for index in 0..<30 {
            let value = index % 3 == 0 ? "2100000" : "\(500_000 + index * 1_000)"
            lines.append("T-\(100 + index),Road works lot \(index),\"Resurfacing of \(index + 2) km of roads, with drainage\",City of Lyon,"
                         + String(format: "%02d/01/2027", index + 1) + ",\(value)")
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: inbox + "/tenders.csv", atomically: true, encoding: .utf8)
        try "a,b\n1,2\n3,4\n".write(toFile: inbox + "/numbers.csv", atomically: true, encoding: .utf8)

        let first = try ingest(directory.file("root"), engine, ["--collection", "tenders", "--source", inbox, "--embedder", "sextant-hash"])
        #expect(first.status == 2, "a failed file makes --once exit non-zero: \(first.stderr.suffix(1_500))")
        #expect(first.summary?.rowsIngested == 30 && first.summary?.filesFailed == 1)
        #expect(FileManager.default.fileExists(atPath: inbox + "/failed/numbers.csv"))
        let reason = try String(contentsOfFile: inbox + "/failed/numbers.csv.reason", encoding: .utf8)
        #expect(reason.contains("no column holds text"))
        #expect(first.stderr.contains("numbers.csv was not ingested") && first.stderr.contains("put it back in the inbox"))
        let mappings = try FileManager.default.contentsOfDirectory(atPath: directory.file("root/ingest/mappings"))
        #expect(mappings.count == 1 && mappings.first?.hasPrefix("tenders-") == true)
        let written = try String(contentsOfFile: directory.file("root/ingest/mappings/") + (mappings.first ?? ""), encoding: .utf8)
        #expect(written.contains("\"tender_id\"") && written.contains("DD/MM/YYYY"))

        let client = try await SextantClient.connect(to: engine.address)
        let collection = try await client.getCollection(name: "tenders")
        let expensive = try await collection.get(where: .gt("value_eur", .int(1_000_000)), include: [.metadatas])
        #expect(expensive.count == 10, "value_eur is a number: \(expensive.first?.metadata ?? [:])")
        // 15/01/2027 00:00 UTC and after: the deadline is epoch seconds beside its text.
        let fifteenth: Int64 = 1_799_971_200
        let fromFifteenth = try await collection.get(where: .gte("deadline", .int(fifteenth)), include: [.metadatas])
        #expect(fromFifteenth.count == 16 && fromFifteenth.allSatisfy { $0.metadata?["deadline_text"] != nil })
        // The collection says deadline is a DD/MM/YYYY date: the API reads the feed's own literal as those seconds.
        let info = try await client.getCollection(name: "tenders").info
        #expect(info.metadata[DateFields.metadataKey] == .string("deadline=DD/MM/YYYY"))
        let literal = WhereFilter.gte("deadline", .string("15/01/2027")).readingDates(DateFields.formats(in: info.metadata))
        #expect(literal == .gte("deadline", .int(fifteenth)))
        #expect(try await collection.get(where: literal, include: []).count == 16)
        #expect(WhereFilter.lt("deadline", .string("2027-01-15")).readingDates(DateFields.formats(in: info.metadata))
                == .lt("deadline", .int(fifteenth)), "ISO 8601 is read too")
        // The CLI takes the same typed values and literals.
        let (status, out, err) = try SextantBinary.run(["get", "--engine", engine.address, "--collection", "tenders", "--limit", "100",
                                                        "--where", #"{"deadline": {"$gte": "15/01/2027"}}"#])
        #expect(status == 0 && out.split(separator: "\n").count == 16, "\(err)")
        let (refused, _, why) = try SextantBinary.run(["get", "--engine", engine.address, "--collection", "tenders",
                                                        "--where", #"{"buyer": {"$gt": 5}}"#])
        #expect(refused != 0 && why.contains("'buyer' holds text"), "\(why)")
        let record = try await collection.get(ids: ["T-100"], include: [.documents, .metadatas]).first
        #expect(record?.document == "Road works lot 0. Resurfacing of 2 km of roads, with drainage")
        #expect(record?.metadata?["deadline_text"] == .string("01/01/2027") && record?.metadata?["buyer"] == .string("City of Lyon"))

        // Nothing new: exit 0, nothing failed or retried; an edited mapping wins for the next file of that header.
        let second = try ingest(directory.file("root"), engine, ["--collection", "tenders", "--source", inbox, "--embedder", "sextant-hash"])
        #expect(second.status == 0 && second.summary?.files == 0 && second.summary?.filesFailed == 0)
        let path = directory.file("root/ingest/mappings/") + (mappings.first ?? "")
        try written.replacingOccurrences(of: "\"value_eur\": \"int\"", with: "\"value_eur\": \"string\"")
            .write(toFile: path, atomically: true, encoding: .utf8)
        try (lines.prefix(2).joined(separator: "\n").replacingOccurrences(of: "T-100", with: "T-900") + "\n")
            .write(toFile: inbox + "/tenders-2.csv", atomically: true, encoding: .utf8)
        let third = try ingest(directory.file("root"), engine, ["--collection", "tenders", "--source", inbox, "--embedder", "sextant-hash"])
        #expect(third.status == 0 && third.summary?.rowsIngested == 1)
        #expect(try await collection.get(ids: ["T-900"], include: [.metadatas]).first?.metadata?["value_eur"] == .string("2100000"))
        await client.close()
    }

    @Test func badRowsGoToTheQuarantineAndTheBatchGoesOn() async throws {
        let directory = TemporaryDirectory("sextant-ingest")
        defer { directory.remove() }
        let engine = try EngineProcess(dataRoot: directory.file("root"))
        defer { engine.stop() }
        let inbox = directory.file("inbox")
        try FileManager.default.createDirectory(atPath: inbox, withIntermediateDirectories: true)
        try """
            id,title,body,section,installed_size,architecture
            good-1,First,"A body, with a comma",web,10,amd64
            ,No id,body,web,1,amd64
            bad-int,Title,body,web,lots,amd64
            no-arch,Title,body,web,3,
            short,Only three,fields
            good-2,Second,"multi
            line ""quoted"" body",admin,20,all

            """.replacingOccurrences(of: "\n", with: "\r\n")
            .write(toFile: inbox + "/feed.csv", atomically: true, encoding: .utf8)
        try """
            {"id": "id", "document": {"columns": ["title", "body"], "separator": ". "},
             "metadata": {"section": "string", "installed_size": "int", "architecture": {"type": "string", "required": true}}}
            """.write(toFile: directory.file("mapping.json"), atomically: true, encoding: .utf8)
        let run = try ingest(directory.file("root"), engine, ["--collection", "small", "--source", inbox, "--mapping",
                                                              directory.file("mapping.json"), "--batch", "2", "--embedder", "sextant-hash"])
        #expect(run.status == 0, "\(run.stderr.suffix(2_000))")
        #expect(run.summary?.rowsIngested == 2)
        #expect(run.summary?.rowsQuarantined == 4)
        let quarantineFolder = directory.file("root/ingest/quarantine")
        let files = try FileManager.default.contentsOfDirectory(atPath: quarantineFolder)
        #expect(files.count == 1)
        let text = try String(contentsOfFile: quarantineFolder + "/" + (files.first ?? ""), encoding: .utf8)
        #expect(text.contains("3,\"missing id"))
        #expect(text.contains("4,\"'installed_size' is not an integer: 'lots'\""))
        #expect(text.contains("5,\"missing value for required column 'architecture'\""))
        #expect(text.contains("6,\"expected 6 fields, found 3\""))
        let client = try await SextantClient.connect(to: engine.address)
        let collection = try await client.getCollection(name: "small")
        let records = try await collection.get(ids: ["good-1", "good-2"], include: [.documents, .metadatas])
        #expect(records.count == 2)
        #expect(records.first { $0.id == "good-2" }?.document == "Second. multi\nline \"quoted\" body")
        #expect(collection.info.metadata["sextant:embedder"] == .string("sextant-hash@1"))
        await client.close()
    }

    @Test func killNineMidFileResumesWithNoLossAndNoDuplicates() async throws {
        let directory = TemporaryDirectory("sextant-ingest")
        defer { directory.remove() }
        let root = directory.file("root")
        let engine = try EngineProcess(dataRoot: root)
        defer { engine.stop() }
        let inbox = directory.file("inbox")
        try FileManager.default.createDirectory(atPath: inbox, withIntermediateDirectories: true)
        for k in 1...2 { try FileManager.default.copyItem(atPath: Self.batch(k), toPath: inbox + "/batch_\(k).csv") }
        let arguments = ["ingest", "--data", root, "--engine", engine.address, "--once", "--no-progress", "--collection", "debian",
                         "--source", inbox, "--mapping", Self.mapping, "--vectors", Self.vectors, "--batch", "250"]
        let worker = try SextantBinary.start(arguments, logPath: directory.file("worker.log"))
        // Kill it once the second file is part-way through.
        let deadline = Date().addingTimeInterval(120)
        var killedAt = 0
        while Date() < deadline && worker.isRunning {
            if let database = try? Database(path: root + "/ingest/ledger.sqlite"),
               let rows = try? database.query("SELECT rows_done FROM files WHERE name = 'batch_2.csv' AND status = 'running'"),
               let done = rows.first?.first?.integer, done >= 1_000 {
                worker.killHard()
                killedAt = Int(done)
                break
            }
            usleep(5_000)
        }
        #expect(killedAt > 0 && killedAt < 10_000, "worker finished before it could be killed")
        let resumed = try SextantBinary.run(arguments + ["--json"])
        #expect(resumed.0 == 0, "\(resumed.2.suffix(2_000))")
        #expect(resumed.2.contains("resuming batch_2.csv after row"))
        let database = try Database(path: root + "/ingest/ledger.sqlite")
        let files = try database.query("SELECT name, status, rows_done, rows_ingested FROM files ORDER BY name")
        #expect(files.map { $0[0].text ?? "" } == ["batch_1.csv", "batch_2.csv"])
        #expect(files.allSatisfy { $0[1].text == "done" && $0[2].integer == 10_000 && $0[3].integer == 10_000 })
        let client = try await SextantClient.connect(to: engine.address)
        let collection = try await client.getCollection(name: "debian")
        #expect(try await collection.count() == 20_000)
        try await expectAllPresent(collection, try ids(Self.batch(1)) + ids(Self.batch(2)))
        await client.close()
    }

    @Test func bucketSourceOverARealS3Server() async throws {
        let directory = TemporaryDirectory("sextant-ingest")
        defer { directory.remove() }
        let moto = try MotoServer(logPath: directory.file("moto.log"))
        defer { moto.stop() }
        let environment = moto.environment
        let settings = S3Settings(environment: environment)
        let bucket = try S3Store(bucket: "feeds", prefix: "daily/", settings: settings)
        try await bucket.createBucket()
        try await bucket.upload(file: Self.batch(3), to: "batch_3.csv", sha256Hex: nil)
        try await bucket.write(Array("id,title,body\nx1,Hello,from a bucket\n".utf8), to: "extra.csv")
        let misc = try S3Store(bucket: "feeds", prefix: "misc/", settings: settings)
        try await misc.write(Array("id,title,body\nx1,Hello,from a bucket\n".utf8), to: "extra.csv")
        try await bucket.write(Array("not a csv".utf8), to: "notes.txt")
        #expect(try await bucket.list(prefix: "").map(\.key) == ["batch_3.csv", "extra.csv", "notes.txt"])
        #expect(try await bucket.read("extra.csv", maximumBytes: 1_000) == Array("id,title,body\nx1,Hello,from a bucket\n".utf8))

        let engine = try EngineProcess(dataRoot: directory.file("root"))
        defer { engine.stop() }
        // batch_3 with precomputed vectors into one collection; the small file with the built-in embedder into another.
        let first = try ingest(directory.file("root"), engine, ["--collection", "debian", "--source", "s3://feeds/daily",
                                                                "--mapping", Self.mapping, "--vectors", Self.vectors],
                               environment: environment)
        // extra.csv does not fit the debian mapping: the run goes on, and --once exits 2 so a cron job notices.
        #expect(first.status == 2, "\(first.stderr.suffix(2_000))")
        #expect(first.summary?.rowsIngested == 10_000)
        #expect(first.summary?.filesFailed == 1)
        #expect(first.stderr.contains("extra.csv was not ingested") && first.stderr.contains("not retried until it changes"))
        let second = try ingest(directory.file("root"), engine, ["--collection", "debian", "--source", "s3://feeds/daily",
                                                                 "--mapping", Self.mapping, "--vectors", Self.vectors],
                                environment: environment)
        #expect(second.status == 0, "nothing failed this time: the failed file is not retried")
        #expect(second.summary?.rowsIngested == 0)
        // batch_3 recognised by ETag, not downloaded again; extra.csv failed before with the same bytes.
        #expect(second.summary?.filesSkipped == 2 && second.summary?.filesFailed == 0)
        let other = try ingest(directory.file("root"), engine, ["--collection", "misc", "--source", "s3://feeds/misc"],
                               environment: environment)
        #expect(other.summary?.rowsIngested == 1)
        let wrongKey = try ingest(directory.file("root"), engine, ["--collection", "misc", "--source", "s3://nobucket/x"],
                                  environment: environment)
        #expect(wrongKey.status != 0)
        #expect(wrongKey.stderr.contains("NoSuchBucket"))
        #expect(!wrongKey.stderr.contains("testing-secret"))
        let client = try await SextantClient.connect(to: engine.address)
        #expect(try await client.getCollection(name: "debian").count() == 10_000)
        await client.close()
    }

    @Test func urlSourceUsesConditionalGets() async throws {
        let directory = TemporaryDirectory("sextant-ingest")
        defer { directory.remove() }
        let site = directory.file("site")
        try FileManager.default.createDirectory(atPath: site, withIntermediateDirectories: true)
        try "id,text\na,first version\nb,second row\n".write(toFile: site + "/feed.csv", atomically: true, encoding: .utf8)
        let server = try BackgroundServer(python: ["-m", "http.server", "{port}", "--bind", "127.0.0.1", "--directory", site],
                                          logPath: directory.file("http.log"))
        defer { server.stop() }
        let engine = try EngineProcess(dataRoot: directory.file("root"))
        defer { engine.stop() }
        let arguments = ["--collection", "web", "--source", server.url + "/feed.csv"]
        let first = try ingest(directory.file("root"), engine, arguments)
        #expect(first.status == 0, "\(first.stderr.suffix(2_000))")
        #expect(first.summary?.rowsIngested == 2)
        let unchanged = try ingest(directory.file("root"), engine, arguments)
        #expect(unchanged.summary?.rowsIngested == 0)
        #expect(unchanged.summary?.filesSkipped == 1)
        let log = try String(contentsOfFile: directory.file("http.log"), encoding: .utf8)
        #expect(log.contains("\" 304 "))
        sleep(1)  // Last-Modified has one-second resolution
        try "id,text\na,changed text\nc,third\n".write(toFile: site + "/feed.csv", atomically: true, encoding: .utf8)
        let changed = try ingest(directory.file("root"), engine, arguments)
        #expect(changed.summary?.rowsIngested == 2)
        let client = try await SextantClient.connect(to: engine.address)
        let records = try await client.getCollection(name: "web").get(ids: ["a"], include: [.documents])
        #expect(records.first?.document == "changed text")
        await client.close()
    }

    @Test func enrichmentAndRemoteEmbeddersAgainstAStandInServer() async throws {
        let directory = TemporaryDirectory("sextant-ingest")
        defer { directory.remove() }
        let standin = try BackgroundServer(
            python: [TestDataset.packageRoot + "/tools/python/model_standin.py", "--port", "{port}", "--key", "k-123",
                     "--fail-every", "4", "--fail-marker", "FAILME"],
            logPath: directory.file("standin.log"))
        defer { standin.stop() }
        let engine = try EngineProcess(dataRoot: directory.file("root"))
        defer { engine.stop() }
        let inbox = directory.file("inbox")
        try FileManager.default.createDirectory(atPath: inbox, withIntermediateDirectories: true)
        var csv = "id,text\n"
        for index in 0..<40 { csv += "r\(index),\(index == 17 ? "FAILME row" : "row number \(index) about vector search")\n" }
        try csv.write(toFile: inbox + "/rows.csv", atomically: true, encoding: .utf8)
        let environment = ["GEMINI_BASE_URL": standin.url, "GEMINI_API_KEY": "k-123", "OPENAI_BASE_URL": standin.url + "/v1",
                           "OPENAI_API_KEY": "k-123"]
        let run = try ingest(directory.file("root"), engine,
                             ["--collection", "enriched", "--source", inbox, "--embedder", "openai:standin-embed",
                              "--enrich", "gemini:standin-flash", "--enrich-batch", "5", "--batch", "10"],
                             environment: environment)
        #expect(run.status == 0, "\(run.stderr.suffix(2_000))")
        #expect(run.summary?.rowsIngested == 40)
        #expect(run.summary?.enrichmentFailures == 1)  // only the FAILME row, after its batch was split
        let client = try await SextantClient.connect(to: engine.address)
        let collection = try await client.getCollection(name: "enriched")
        #expect(collection.info.metadata["sextant:embedder"] == .string("openai/standin-embed@api"))
        #expect(collection.dimension == 64)
        let rows = try await collection.get(ids: ["r3", "r17"], include: [.metadatas])
        #expect(rows.first { $0.id == "r3" }?.metadata?["summary"] == .string("Summary: row number 3 about vector"))
        #expect(rows.first { $0.id == "r17" }?.metadata?["summary"] == nil)
        let log = try String(contentsOfFile: directory.file("standin.log"), encoding: .utf8)
        #expect(log.contains("injected 429"))  // and the worker retried them: every good row has its summary

        // Another embedder into the same collection is refused, clearly.
        try "id,text\nz,more\n".write(toFile: inbox + "/more.csv", atomically: true, encoding: .utf8)
        let mixed = try ingest(directory.file("root"), engine, ["--collection", "enriched", "--source", inbox,
                                                                "--embedder", "gemini:standin-embed"], environment: environment)
        #expect(mixed.status != 0)
        #expect(mixed.stderr.contains("holds vectors from openai/standin-embed@api; refusing"))

        // A budget of one request: every row is still ingested, unenriched rows counted.
        let budget = try ingest(directory.file("root"), engine,
                                ["--collection", "budget", "--source", inbox, "--enrich", "gemini:standin-flash",
                                 "--enrich-budget", "1", "--enrich-batch", "1"], environment: environment)
        #expect(budget.summary?.rowsIngested == 1)
        #expect(budget.summary?.enrichmentFailures == 0 || budget.summary?.enrichmentFailures == 1)
        await client.close()
    }
}

@Suite struct UpRunsTheInboxWorkerTests {
    @Test func csvDroppedIntoTheInboxIsSearchable() async throws {
        let directory = TemporaryDirectory("sextant-up-ingest")
        defer { directory.remove() }
        let root = directory.file("root")
        let up = try UpProcess(dataRoot: root, extraArguments: ["--ingest-interval", "1s", "--ingest-collection", "notes"])
        defer { up.stop() }
        // Written under a dot-name and renamed, as the inbox documentation asks.
        try "id,text,topic\nn1,the backup runs every night,ops\nn2,\"restore, then verify checksums\",ops\n"
            .write(toFile: root + "/inbox/.notes.tmp", atomically: true, encoding: .utf8)
        try FileManager.default.moveItem(atPath: root + "/inbox/.notes.tmp", toPath: root + "/inbox/notes.csv")
        let client = try await SextantClient.connect(to: up.engineAddress)
        let deadline = Date().addingTimeInterval(60)
        var count = 0
        while Date() < deadline {
            if let collection = try? await client.getCollection(name: "notes") { count = try await collection.count() }
            if count == 2 { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(count == 2, "\(up.log.suffix(3_000))")
        // The worker moves the file after its last write is acknowledged: the records can be searchable a moment earlier.
        while Date() < deadline, !FileManager.default.fileExists(atPath: root + "/inbox/done/notes.csv") {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(FileManager.default.fileExists(atPath: root + "/inbox/done/notes.csv"))
        // The demo collection was still created first.
        #expect(try await client.getCollection(name: "demo").count() > 3_000)
        // The page's status line reads the worker's runs from the ledger.
        func get(_ url: String) async throws -> (status: Int, body: String) {
            let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(30))
            return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 1 << 20)))
        }
        var runs = try await get(up.apiURL + "/v1/ingest/runs?limit=5")
        while Date() < deadline, !runs.body.contains("\"rows_ingested\":2") {
            try await Task.sleep(for: .milliseconds(200))
            runs = try await get(up.apiURL + "/v1/ingest/runs?limit=5")
        }
        #expect(runs.status == 200 && runs.body.contains("\"rows_ingested\":2") && runs.body.contains("\"failed_files\":[]")
                && runs.body.contains("\"scrapes\":[]"), "\(runs.body)")
        #expect(try await get(up.apiURL + "/v1/ingest/runs?limit=0").status == 400)
        // Prometheus reads the worker's counters from the same ledger.
        let metrics = try await get(up.apiURL + "/metrics").body
        #expect(metrics.contains("sextant_ingest_rows_ingested_total 2") && metrics.contains("sextant_ingest_files_failed 0")
                && metrics.contains("sextant_ingest_last_run_timestamp_seconds 1"), "\(metrics.suffix(1_500))")
        await client.close()
        #expect(up.stop() == 0)
    }
}
