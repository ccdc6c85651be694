import Foundation
import SextantIngest
import SextantJSON
import SextantPayload
import SextantTestSupport
import Testing

/// A CSV without a mapping is read as a person would read it: the id column
/// by its name and unique values, prose as the document, numbers, flags and
/// dates typed so that range filters work; what cannot be decided is said.
@Suite struct MappingInferenceTests {
    static let tenderHeader = ["tender_id", "title", "description", "buyer", "deadline", "value_eur", "open", "lot_size"]

    static func tenderRows(_ count: Int) -> [[String]] {
        let buyers = ["City of Lyon", "Port of Antwerp", "Région Occitanie"]
        var rows: [[String]] = []
        for index in 0..<count {
            let description = "Resurfacing of \(index % 7 + 2) km of municipal roads, including drainage and markings."
            let deadline = String(format: "%02d/%02d/2027", index % 28 + 1, index % 12 + 1)
            let value: String = index % 2 == 0 ? "2.100.000" : "\(950 + index).000"
            let open: String = index % 3 == 0 ? "yes" : "no"
            let row: [String] = ["T-\(1_000 + index)", "Road resurfacing lot \(index)", description, buyers[index % 3], deadline, value, open,
                                 "\(index % 5),5"]
            rows.append(row)
        }
        return rows
    }

    @Test func tendersFeedIsTyped() throws {
        let result = try MappingInference.infer(header: Self.tenderHeader, sample: Self.tenderRows(40))
        let mapping = result.mapping
        #expect(mapping.idColumn == "tender_id" && !mapping.idFromContent)
        #expect(mapping.documentColumns == ["title", "description"], "title-like first, then the prose")
        let types = Dictionary(uniqueKeysWithValues: mapping.metadata.map { ($0.name, $0.type) })
        #expect(types == ["buyer": .string, "deadline": .date, "value_eur": .int, "open": .bool, "lot_size": .float])
        // Written as a mapping file and read back the same.
        let reread = try Mapping(json: try JSON.parse(JSON.serialize(mapping.json, pretty: true)), origin: "inferred")
        var sorted = mapping
        sorted.metadata.sort { $0.name < $1.name }
        #expect(reread == sorted, "a mapping file's metadata is an object: order is not kept")
        #expect(result.notes.contains { $0.contains("deadline") && $0.contains("DD/MM/YYYY") })
    }

    @Test func numbersAsWritten() throws {
        func inferred(_ values: [String]) throws -> Mapping.Column? {
            let rows = values.enumerated().map { ["r\($0.offset)", "some words of text here \($0.offset)", $0.element] }
            return try MappingInference.infer(header: ["id", "text", "n"], sample: rows).mapping.metadata.first
        }
        #expect(try inferred(["2100000", "-3", "17"])?.type == .int)
        #expect(try inferred(["1,234,567", "12", "999"])?.type == .int)
        #expect(try inferred(["1.5", "2", "-0.25"])?.type == .float)
        #expect(try inferred(["2,5", "3", "10,75"])?.type == .float)
        #expect(try inferred(["1.234,50", "12,00"])?.type == .float)
        #expect(try inferred(["12 apples", "3"])?.type == .string)
        #expect(try inferred(["true", "False", "yes"])?.type == .bool)
        #expect(try inferred(["01234", "75001"])?.type == .string, "a postcode with its leading zero")
        #expect(try inferred(["+33612345678", "+4915112345678"])?.type == .string, "a phone number")
        #expect(try inferred(["0", "12", "-3"])?.type == .int, "zero alone is a number")
        #expect(try inferred(["0,5", "12,25"])?.type == .float)
    }

    @Test func datesAreDecidedBySampleOrRefused() throws {
        func inferred(_ values: [String]) throws -> (Mapping.Column?, [String]) {
            let rows = values.enumerated().map { ["r\($0.offset)", "some words of text here \($0.offset)", $0.element] }
            let result = try MappingInference.infer(header: ["id", "text", "when"], sample: rows)
            return (result.mapping.metadata.first, result.notes)
        }
        #expect(try inferred(["2026-12-07", "2027-01-31"]).0?.type == .date)
        #expect(try inferred(["2026-12-07T10:00:00Z", "2027-01-31 14:30:00+01:00"]).0?.type == .datetime)
        #expect(try inferred(["07/12/2026", "31/01/2027"]).0?.type == .date, "a day past 12 makes it day-first")
        #expect(try inferred(["12/07/2026", "01/31/2027"]).0?.type == .date, "a second part past 12 makes it month-first")
        let (ambiguous, notes) = try inferred(["01/02/2026", "03/04/2026"])
        #expect(ambiguous?.type == .string)
        #expect(notes.contains { $0.contains("day-first and month-first") })
    }

    @Test func withoutAnIdColumnTheIdIsTheRowsHash() throws {
        let rows = (0..<5).map { ["Title \($0)", "A long description of item \($0) with several words", "\($0)"] }
        let result = try MappingInference.infer(header: ["title", "body", "rank"], sample: rows)
        #expect(result.mapping.idFromContent)
        #expect(result.notes.first?.contains("hash of its row") == true)
        // A column named like an id whose values repeat is not the id.
        let repeated = (0..<5).map { ["A\($0 % 2)", "words and more words here \($0)"] }
        #expect(try MappingInference.infer(header: ["code", "text"], sample: repeated).mapping.idFromContent)
    }

    @Test func everyColumnANumberIsRefusedClearly() {
        #expect(throws: IngestError.self) { try MappingInference.infer(header: ["id", "a", "b"], sample: [["1", "2", "3"]]) }
    }
}
