import Foundation
import SextantClient
import SextantIngest
import SextantPayload
import SextantTestSupport
import Testing

/// Files shaped like the exports people actually drop into an inbox, each
/// ingested by `sextant ingest --once` with no mapping against a real engine,
/// then read back typed: the id found, numbers and dates filterable by range,
/// codes kept as written.
@Suite struct RealWorldCSVTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var file: String
        var bytes: [UInt8]
        var records: Int
        var check: @Sendable (CollectionHandle) async throws -> Void
        var testDescription: String { name }
    }

    static func utf8(_ text: String) -> [UInt8] { Array(text.utf8) }

    static let cases: [Case] = [
        Case(name: "semicolons, decimal commas with dot thousands, day-first dates (a French procurement export)",
             file: "avis.csv",
             bytes: utf8("""
                notice_id;titre;description;acheteur;date_limite;montant_eur
                BOAMP-001;Travaux de voirie;"Réfection de 3 km de chaussée; marquage inclus";Ville de Lyon;15/01/2027;1.250.000,50
                BOAMP-002;Nettoyage des écoles;"Entretien de 12 groupes scolaires, vitrerie comprise";Ville de Lyon;31/12/2026;84.300,00
                BOAMP-003;Fourniture de repas;"Restauration collective pour 4 000 élèves";Métropole;02/02/2027;2.900.000,00
                BOAMP-004;Audit énergétique;"Diagnostic de 40 bâtiments publics";Région;13/01/2027;95.000,25

                """),
             records: 4,
             check: { (collection: CollectionHandle) async throws in
                 let big = try await collection.get(where: .gt("montant_eur", .double(1_000_000)), include: [])
                 #expect(Set(big.map(\.id)) == ["BOAMP-001", "BOAMP-003"])
                 let record = try await collection.get(ids: ["BOAMP-004"], include: [.metadatas, .documents]).first
                 #expect(record?.metadata?["montant_eur"] == .double(95_000.25))
                 #expect(record?.document == "Audit énergétique. Diagnostic de 40 bâtiments publics")
                 // 14/01/2027 onwards, day-first.
                 let later = try await collection.get(where: .gte("date_limite", .int(1_799_884_800)), include: [])
                 #expect(Set(later.map(\.id)) == ["BOAMP-001", "BOAMP-003"])
             }),
        Case(name: "a byte-order mark, CRLF line ends and a line break inside a quoted field (a spreadsheet export)",
             file: "export.csv",
             bytes: [0xEF, 0xBB, 0xBF] + utf8(
                "ID,Title,Notes,Priority\r\n1,Replace the boiler,\"Old unit leaks.\r\nCall the supplier first.\",2\r\n"
                + "2,Paint the hall,Two coats of white,1\r\n3,Fix the gate,\"The latch sticks, oil it\",3\r\n"),
             records: 3,
             check: { (collection: CollectionHandle) async throws in
                 let record = try await collection.get(ids: ["1"], include: [.documents, .metadatas]).first
                 let document = record?.document ?? ""
                 #expect(document.hasPrefix("Replace the boiler. Old unit leaks.") && document.hasSuffix("Call the supplier first.")
                         && !document.contains("\r"), "\(document)")
                 #expect(record?.metadata?["Priority"] == .int(2))
                 #expect(try await collection.get(where: .lte("Priority", .int(2)), include: []).count == 2)
             }),
        Case(name: "month-first dates and comma thousands with dot decimals (a US order export)",
             file: "orders.csv",
             bytes: utf8("""
                ref,product,summary,order_date,amount_usd
                PO-1,Standing desk,"Oak top, electric frame, two motors",12/31/2026,"1,234.50"
                PO-2,Office chair,"Mesh back with lumbar support",01/15/2027,349.99
                PO-3,Monitor arm,"Dual arm for two 27 inch screens",02/01/2027,"2,089.00"

                """),
             records: 3,
             check: { (collection: CollectionHandle) async throws in
                 let record = try await collection.get(ids: ["PO-1"], include: [.metadatas]).first
                 #expect(record?.metadata?["amount_usd"] == .double(1_234.5))
                 #expect(record?.metadata?["order_date_text"] == .string("12/31/2026"))
                 // 2027-01-01 onwards.
                 #expect(Set(try await collection.get(where: .gte("order_date", .int(1_798_761_600)), include: []).map(\.id)) == ["PO-2", "PO-3"])
             }),
        Case(name: "tab-separated with an empty column and sparse values",
             file: "catalogue.tsv.csv",
             bytes: utf8("code\ttitle\tabstract\tnotes\tcategory\n"
                         + "A-17\tLinear algebra\tVectors, matrices and their decompositions for engineers\t\tmaths\n"
                         + "B-02\tOrganic chemistry\tCarbon compounds, reactions and laboratory practice\t\t\n"
                         + "C-33\tMedieval history\tEurope from the fall of Rome to the printing press\t\thistory\n"),
             records: 3,
             check: { (collection: CollectionHandle) async throws in
                 let records = try await collection.get(include: [.metadatas])
                 #expect(records.allSatisfy { $0.metadata?["notes"] == nil }, "an empty column adds nothing")
                 #expect(records.first { $0.id == "A-17" }?.metadata?["category"] == .string("maths"))
                 #expect(records.first { $0.id == "B-02" }?.metadata?["category"] == nil)
             }),
        Case(name: "no id column: ids from each row's content, stable across files",
             file: "faq.csv",
             bytes: utf8("""
                question,answer,views
                How do I reset my password?,"Open settings, choose security, then reset",120
                Can I export my data?,"Yes, as CSV or JSON from the account page",45
                Where are invoices?,"Under billing, one per month",77

                """),
             records: 3,
             check: { (collection: CollectionHandle) async throws in
                 let records = try await collection.get(include: [.metadatas])
                 #expect(records.allSatisfy { $0.id.count >= 16 }, "\(records.map(\.id))")
                 #expect(try await collection.get(where: .gt("views", .int(50)), include: []).count == 2)
             }),
        Case(name: "booleans in several spellings and ISO 8601 date-times with offsets",
             file: "news.csv",
             bytes: utf8("""
                id,headline,text,published_at,is_open,featured
                n1,Bridge reopens,"The river bridge reopened after two years of repairs",2026-12-07T09:30:00+01:00,TRUE,Y
                n2,New bus line,"Line 12 now links the station and the hospital",2026-12-08T14:00:00Z,FALSE,N
                n3,Library hours,"The central library opens on Sundays from January",2026-12-09 08:15:00+00:00,true,n

                """),
             records: 3,
             check: { (collection: CollectionHandle) async throws in
                 #expect(Set(try await collection.get(where: .eq("is_open", .bool(true)), include: []).map(\.id)) == ["n1", "n3"])
                 #expect(try await collection.get(where: .eq("featured", .bool(true)), include: []).map(\.id) == ["n1"])
                 // 2026-12-07T08:30:00Z is n1's instant; after it come n2 and n3.
                 #expect(Set(try await collection.get(where: .gt("published_at", .int(1_796_632_200)), include: []).map(\.id)) == ["n2", "n3"])
             }),
        Case(name: "quoted prose with doubled quotes, commas and non-Latin text",
             file: "reviews.csv",
             bytes: utf8("""
                uid,title,summary,author
                r1,"The ""best"" kettle, really","Boils fast; the lid sticks, though",Ana
                r2,東京の地図,"駅から徒歩五分、とても便利です",Ken
                r3,Ça marche,"Très bien — livré en 24 h 🚚",Élise

                """),
             records: 3,
             check: { (collection: CollectionHandle) async throws in
                 let records = try await collection.get(include: [.documents, .metadatas])
                 #expect(records.first { $0.id == "r1" }?.document == "The \"best\" kettle, really. Boils fast; the lid sticks, though")
                 #expect(records.first { $0.id == "r2" }?.document == "東京の地図. 駅から徒歩五分、とても便利です")
                 #expect(records.first { $0.id == "r3" }?.metadata?["author"] == .string("Élise"))
             }),
        Case(name: "postcodes and phone numbers with leading zeros or a plus sign stay text",
             file: "customers.csv",
             bytes: utf8("""
                customer_id,name,description,postcode,phone,orders
                000123,Acme Hardware,"A small shop selling tools and hardware",01234,0612345678,14
                000124,Beta Garden,"Garden supplies, seeds and pots",75001,+33698765432,3
                000125,Gamma Bakery,"Fresh bread every morning and cakes",00345,0711111111,27

                """),
             records: 3,
             check: { (collection: CollectionHandle) async throws in
                 let record = try await collection.get(ids: ["000123"], include: [.metadatas]).first
                 #expect(record?.metadata?["postcode"] == .string("01234") && record?.metadata?["phone"] == .string("0612345678"))
                 #expect(try await collection.get(ids: ["000124"], include: [.metadatas]).first?.metadata?["phone"] == .string("+33698765432"))
                 #expect(try await collection.get(where: .gte("orders", .int(14)), include: []).count == 2)
             }),
        Case(name: "space thousands separators and negative decimal commas (a European statistics table)",
             file: "communes.csv",
             bytes: utf8("""
                code;commune;portrait;population;evolution_pct
                69123;Lyon;"Ville au confluent du Rhône et de la Saône";522 250;-0,4
                13055;Marseille;"Port sur la Méditerranée, deuxième ville du pays";873 076;1,2
                31555;Toulouse;"Ville rose, capitale de l'aéronautique";504 078;2,5

                """),
             records: 3,
             check: { (collection: CollectionHandle) async throws in
                 let record = try await collection.get(ids: ["69123"], include: [.metadatas]).first
                 #expect(record?.metadata?["population"] == .double(522_250) && record?.metadata?["evolution_pct"] == .double(-0.4))
                 #expect(Set(try await collection.get(where: .gt("population", .double(510_000)), include: []).map(\.id)) == ["69123", "13055"])
             }),
    ]

    static func ingest(_ root: String, _ engine: EngineProcess, _ collection: String, _ inbox: String) throws
        -> (status: Int32, summary: IngestSummary?, stderr: String, peakRSSBytes: Int)
    {
        let process = try SextantBinary.start(
            ["ingest", "--data", root, "--engine", engine.address, "--once", "--json", "--no-progress", "--collection", collection,
             "--source", inbox, "--embedder", "sextant-hash"], logPath: root + "-ingest.log")
        // The worker's own high-water mark of resident memory, read while it runs.
        var peak = 0
        let deadline = Date().addingTimeInterval(900)
        while process.isRunning && Date() < deadline {
            if let status = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8),
               let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
               let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "")
            {
                peak = max(peak, kilobytes * 1_024)
            }
            usleep(20_000)
        }
        if process.isRunning { process.killHard() }
        let log = (try? String(contentsOfFile: root + "-ingest.log", encoding: .utf8)) ?? ""
        let summary = log.split(separator: "\n").last { $0.hasPrefix("{") }
            .flatMap { try? JSONDecoder().decode(IngestSummary.self, from: Data($0.utf8)) }
        return (process.exitStatus, summary, log, peak)
    }

    @Test(arguments: cases) func ingestsWithNoMapping(_ example: Case) async throws {
        let directory = TemporaryDirectory("sextant-csv")
        defer { directory.remove() }
        let engine = try EngineProcess(dataRoot: directory.file("engine"))
        defer { engine.stop() }
        let inbox = directory.file("inbox")
        try FileManager.default.createDirectory(atPath: inbox, withIntermediateDirectories: true)
        try Data(example.bytes).write(to: URL(fileURLWithPath: inbox + "/" + example.file))
        let run = try Self.ingest(directory.file("root"), engine, "shaped", inbox)
        #expect(run.status == 0 && run.summary?.rowsIngested == example.records && run.summary?.rowsQuarantined == 0,
                "\(run.stderr.suffix(2_000))")
        let client = try await SextantClient.connect(to: engine.address)
        let collection = try await client.getCollection(name: "shaped")
        #expect(try await collection.count() == example.records)
        try await example.check(collection)
        if example.file == "faq.csv" {
            // The same rows again under another name: the same ids, nothing added.
            try Data(example.bytes).write(to: URL(fileURLWithPath: inbox + "/faq-copy.csv"))
            let again = try Self.ingest(directory.file("root"), engine, "shaped", inbox)
            #expect(again.status == 0 && again.summary?.rowsIngested == example.records)
            #expect(try await collection.count() == example.records)
        }
        await client.close()
    }

    /// A 1 GiB file goes through in a bounded amount of memory: the worker
    /// streams it (rows of 256 KiB of prose, each document cut at the mapping's
    /// 16,000-character bound).
    @Test func aGigabyteFileIsStreamed() async throws {
        let directory = TemporaryDirectory("sextant-csv")
        defer { directory.remove() }
        let engine = try EngineProcess(dataRoot: directory.file("engine"))
        defer { engine.stop() }
        let inbox = directory.file("inbox")
        try FileManager.default.createDirectory(atPath: inbox, withIntermediateDirectories: true)
        let path = inbox + "/archive.csv"
        FileManager.default.createFile(atPath: path, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        let words = ["tender", "road", "school", "repair", "supply", "network", "cleaning", "audit", "energy", "bridge"]
        var paragraph = ""
        var index = 0
        while paragraph.utf8.count < 256 * 1_024 {
            paragraph += words[index % words.count] + (index % 13 == 12 ? ". " : " ")
            index += 1
        }
        try handle.write(contentsOf: Data("record_id,title,body,lot\n".utf8))
        let rows = (1 << 30) / (paragraph.utf8.count + 40) + 1
        for row in 0..<rows {
            try handle.write(contentsOf: Data("R-\(row),Archive item \(row),\"\(paragraph)\",\(row % 9)\n".utf8))
        }
        try handle.close()
        let sizeBytes = try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int ?? 0
        #expect(sizeBytes >= 1 << 30)

        let run = try Self.ingest(directory.file("root"), engine, "archive", inbox)
        #expect(run.status == 0 && run.summary?.rowsIngested == rows, "\(run.stderr.suffix(2_000))")
        #expect(run.peakRSSBytes > 0 && run.peakRSSBytes < 256 << 20, "peak RSS \(run.peakRSSBytes >> 20) MiB for a \(sizeBytes >> 20) MiB file")
        let client = try await SextantClient.connect(to: engine.address)
        let collection = try await client.getCollection(name: "archive")
        #expect(try await collection.count() == rows)
        let last = try await collection.get(ids: ["R-\(rows - 1)"], include: [.documents, .metadatas]).first
        #expect(last?.metadata?["lot"] == .int(Int64((rows - 1) % 9)))
        #expect((last?.document?.count ?? 0) <= 16_000)
        await client.close()
    }
}
