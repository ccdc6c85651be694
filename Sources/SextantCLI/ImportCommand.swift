import ArgumentParser
import Foundation
import SextantClient
import SextantImport
import SextantJSON
import SextantSupport

struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Move in from ChromaDB: every collection of a running Chroma server, a persist directory or a .tar.gz of one.",
        discussion: """
            SOURCE is http(s)://HOST:PORT (a Chroma server, read over its REST API), a Chroma persist directory \
            (its chroma.sqlite3 and segment folders, read directly, no Chroma needed), or a .tar.gz of one. \
            Records are upserted by id; an interrupted import resumes where it stopped, a finished one is \
            skipped until its source changes. Exits 2 when a collection was refused.
            """)

    @OptionGroup var engine: EngineOptions
    @Option(name: .customLong("from-chroma"), help: "Chroma server URL, persist directory, or .tar.gz of one.") var fromChroma: String
    @Option(help: "Only this collection (repeatable).") var collection: [String] = []
    @Option(help: "Chroma tenant.") var tenant = "default_tenant"
    @Option(help: "Chroma database.") var database = "default_database"
    @Option(name: .customLong("chroma-token-file"), help: "File holding a Chroma server's token (sent as a bearer token).")
    var chromaTokenFile: String?
    @Option(help: "Records per upsert (1...16384).") var batch = 1_000
    @Flag(name: .customLong("no-text-index"), help: "Create collections without the BM25 full-text index.") var noTextIndex = false
    @Flag(help: "Import from the start even where an import is recorded as finished or partial.") var restart = false
    @Flag(help: "Print the outcome as JSON.") var json = false

    func validate() throws {
        guard (1...16_384).contains(batch) else { throw ValidationError("--batch must be within 1...16384") }
    }

    func run() async throws {
        let scratch = NSTemporaryDirectory() + "sextant-import-\(ProcessInfo.processInfo.processIdentifier)"
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let source = try openChromaSource(fromChroma, scratch: scratch, token: try Secrets.read(chromaTokenFile), tenant: tenant,
                                          database: database)
        let client = try await engine.connect()
        var options = ChromaImporter.Options()
        options.batchSize = batch
        options.textIndex = !noTextIndex
        options.restart = restart
        options.only = Set(collection)
        let stderr = FileHandle.standardError
        let importer = ChromaImporter(client: client, source: source, options: options) { line in
            stderr.write(Data(("import: " + line + "\n").utf8))
        }
        let outcomes: [ChromaImporter.Outcome]
        do {
            outcomes = try await importer.run()
        } catch {
            await client.close()
            throw error
        }
        await client.close()
        if json {
            printJSON(.array(outcomes.map { outcome in
                var object: [String: JSONValue] = [
                    "collection": .string(outcome.name), "records": .int(Int64(outcome.records)), "seconds": .double(outcome.seconds),
                    "skipped": .int(Int64(outcome.skipped.count)), "arrays_as_text": .int(Int64(outcome.arraysAsText)),
                    "resumed_from": .int(Int64(outcome.resumedFrom)),
                ]
                switch outcome.state {
                case .imported: object["state"] = .string("imported")
                case .upToDate: object["state"] = .string("up_to_date")
                case .refused(let why):
                    object["state"] = .string("refused")
                    object["reason"] = .string(why)
                }
                if let embedder = outcome.embedder { object["embedder"] = .string(embedder) }
                return .object(object)
            }))
        } else {
            let records = outcomes.reduce(0) { $0 + $1.records }
            let upToDate = outcomes.filter { $0.state == .upToDate }.count
            let refused = outcomes.count - upToDate - outcomes.filter { $0.state == .imported }.count
            print("imported \(records) records into \(outcomes.filter { $0.state == .imported }.count) collections from \(source.description)"
                  + (upToDate == 0 ? "" : "; \(upToDate) already up to date") + (refused == 0 ? "" : "; \(refused) refused"))
        }
        if outcomes.contains(where: { if case .refused = $0.state { return true } else { return false } }) { throw ExitCode(2) }
    }
}
