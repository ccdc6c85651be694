import Foundation
import SextantIngest
import SextantTestSupport
import Testing

@Suite struct CSVReaderTests {
    func records(_ text: [UInt8], limits: CSVLimits = CSVLimits()) throws -> [CSVRecord] {
        let directory = TemporaryDirectory("sextant-csv")
        defer { directory.remove() }
        let path = directory.file("in.csv")
        FileManager.default.createFile(atPath: path, contents: Data(text))
        var reader = try CSVReader(path: path, limits: limits)
        defer { reader.close() }
        var all: [CSVRecord] = []
        while let record = try reader.next() { all.append(record) }
        return all
    }

    @Test func rfc4180Quoting() throws {
        let text = "\u{FEFF}id,text\r\n1,\"a, b\"\r\n2,\"say \"\"hi\"\"\"\r\n3,\"two\nlines\"\r\n\r\n4,plain\n5,\"\"\r\n6,last"
        let all = try records(Array(text.utf8))
        #expect(all.map(\.fields) == [["id", "text"], ["1", "a, b"], ["2", "say \"hi\""], ["3", "two\nlines"], ["4", "plain"],
                                      ["5", ""], ["6", "last"]])
        #expect(all.map(\.line) == [1, 2, 3, 4, 7, 8, 9])
        #expect(all.allSatisfy { $0.problem == nil })
    }

    /// A spreadsheet export where the decimal mark is a comma: `;` separates
    /// fields, and a header with more tabs than commas is tab-separated.
    @Test func separatorIsReadOffTheHeader() throws {
        let semicolons = try records(Array("\u{FEFF}tender_id;title;value_eur\r\nT-1;\"Roads; lot 1\";2.100.000,50\r\nT-2;Bridge, east;900,5\r\n".utf8))
        #expect(semicolons.map(\.fields) == [["tender_id", "title", "value_eur"], ["T-1", "Roads; lot 1", "2.100.000,50"],
                                            ["T-2", "Bridge, east", "900,5"]])
        let tabs = try records(Array("id\ttext\tn\n1\ta, b\t3\n".utf8))
        #expect(tabs.map(\.fields) == [["id", "text", "n"], ["1", "a, b", "3"]])
        // A quoted header field holding ';' does not make a comma file look like semicolons.
        let commas = try records(Array("id,\"a;b;c\"\n1,x\n".utf8))
        #expect(commas.map(\.fields) == [["id", "a;b;c"], ["1", "x"]])
        // And the inference types decimal commas from such a file.
        let inferred = try MappingInference.infer(header: semicolons[0].fields, sample: semicolons.dropFirst().map(\.fields))
        #expect(inferred.mapping.metadata.first { $0.name == "value_eur" }?.type == .float)
    }

    @Test func lenientWhereWritersStray() throws {
        let all = try records(Array("a,b\n1,x\"y\n2,\"q\"tail\n".utf8))
        #expect(all[1].fields == ["1", "x\"y"])
        #expect(all[2].fields == ["2", "qtail"])
    }

    @Test func boundsAndBadBytesAreRecordProblems() throws {
        var limits = CSVLimits()
        limits.maximumFieldBytes = 8
        var bytes = Array("id,v\n1,short\n2,much too long a field\n3,ok\n4,".utf8)
        bytes += [0xFF, 0xFE]
        bytes += Array("\n5,\"never closed\n6,x\n".utf8)
        let all = try records(bytes, limits: limits)
        #expect(all[1].fields == ["1", "short"])
        #expect(all[2].problem?.contains("exceeds 8 bytes") == true)
        #expect(all[3].fields == ["3", "ok"])  // the reader kept its place
        #expect(all[4].problem?.contains("UTF-8") == true)
        #expect(all[5].problem?.contains("never closed") == true)
        #expect(all[5].line == 6)
        #expect(all.count == 6)
    }

    @Test func streamsAcrossChunkBoundaries() throws {
        // Fields larger than the 256 KiB read chunk, quotes straddling it.
        let big = String(repeating: "ab\"\"c,", count: 60_000)
        let text = "id,v\r\n1,\"\(big)\"\r\n2,z\r\n"
        let all = try records(Array(text.utf8))
        #expect(all.count == 3)
        #expect(all[1].fields[1] == String(repeating: "ab\"c,", count: 60_000))
        #expect(all[2].fields == ["2", "z"])
    }
}

@Suite struct EnrichmentTests {
    @Test func cleanupKeepsStructureAndCaps() async {
        let cleanup = CleanupEnricher(maximumCharacters: 40)
        #expect(cleanup.clean("a \t b\u{0007}c  \n\n\n\n  indented line  \n") == "a bc\n\n  indented line")
        #expect(cleanup.clean(String(repeating: "word ", count: 20)).count <= 40)
        let keywords = KeywordEnricher(count: 3)
        #expect(keywords.keywords("The video editor edits video and audio; video editing for audio files") == ["video", "audio", "editor"])
    }
}

/// The enrichers as they were before the byte-level rewrite, kept as the
/// reference the fast versions must match exactly.
private struct ReferenceEnrichment {
    let maximumCharacters: Int
    let count: Int
    static let stopWords: Set<String> = [
        "the", "and", "for", "are", "but", "not", "you", "all", "any", "can", "her", "was", "one", "our", "out", "has", "have",
        "had", "his", "how", "its", "may", "new", "now", "see", "two", "way", "who", "did", "get", "use", "used", "using",
        "this", "that", "with", "from", "they", "will", "would", "there", "their", "what", "about", "which", "when", "make",
        "like", "than", "then", "them", "these", "some", "such", "into", "also", "other", "more", "most", "only", "over",
        "each", "both", "very", "your", "been", "being", "were", "does", "should", "could", "provides", "package", "contains",
        "files", "file", "support", "includes", "based", "allows", "can't", "it's", "etc", "via", "well", "many", "much",
    ]

    func clean(_ text: String) -> String {
        // One pass over scalars; ASCII (nearly all of it) never consults
        // Unicode property tables, which dominated a profile of the worker.
        var output = String.UnicodeScalarView()
        var line = String.UnicodeScalarView()
        var lineHasText = false
        var pendingSpace = false
        var indentation = 0
        var blankLines = 0
        var wroteLine = false

        func endLine() {
            if lineHasText {
                if wroteLine { output.append(contentsOf: String(repeating: "\n", count: min(blankLines, 1) + 1).unicodeScalars) }
                output.append(contentsOf: line)
                wroteLine = true
                blankLines = 0
            } else if wroteLine {
                blankLines += 1
            }
            line.removeAll(keepingCapacity: true)
            lineHasText = false
            pendingSpace = false
            indentation = 0
        }

        var previousWasCR = false
        for scalar in text.unicodeScalars {
            let value = scalar.value
            if value == 0x0A || value == 0x0D {
                if value == 0x0A && previousWasCR { previousWasCR = false; continue }
                previousWasCR = value == 0x0D
                endLine()
                continue
            }
            previousWasCR = false
            let isSpace = value == 0x20 || value == 0x09 || value == 0xA0
            if isSpace {
                if !lineHasText { indentation = min(indentation + 1, 16) } else { pendingSpace = true }
                continue
            }
            if value < 0x20 || value == 0x7F { continue }
            if value >= 0x80 {
                let category = scalar.properties.generalCategory
                if category == .control || (category == .format && value != 0x200D) { continue }
            }
            if !lineHasText {
                for _ in 0..<indentation { line.append(" ") }
                lineHasText = true
            } else if pendingSpace {
                line.append(" ")
            }
            pendingSpace = false
            line.append(scalar)
        }
        endLine()
        var cleaned = String(output)
        if cleaned.unicodeScalars.count > maximumCharacters && cleaned.count > maximumCharacters {
            var cut = cleaned.prefix(maximumCharacters)
            if let space = cut.lastIndex(where: { $0 == " " || $0 == "\n" }), cut.distance(from: cut.startIndex, to: space) > maximumCharacters / 2 {
                cut = cut[..<space]
            }
            cleaned = String(cut)
        }
        return cleaned
    }

    func keywords(_ text: String) -> [String] {
        var counts: [String: Int] = [:]
        var order: [String: Int] = [:]
        var word = String.UnicodeScalarView()
        var letters = 0
        func finish() {
            defer {
                word.removeAll(keepingCapacity: true)
                letters = 0
            }
            while word.last == "-" { word.removeLast() }
            while word.first == "-" { word.removeFirst() }
            guard word.count >= 3, word.count <= 40, letters > 0 else { return }
            let candidate = String(word).lowercased()
            guard !Self.stopWords.contains(candidate) else { return }
            counts[candidate, default: 0] += 1
            if order[candidate] == nil { order[candidate] = order.count }
        }
        for scalar in text.unicodeScalars {
            let value = scalar.value
            let isLetter: Bool
            let isDigit: Bool
            if value < 0x80 {
                isLetter = (value >= 0x41 && value <= 0x5A) || (value >= 0x61 && value <= 0x7A)
                isDigit = value >= 0x30 && value <= 0x39
            } else {
                isLetter = scalar.properties.isAlphabetic
                isDigit = scalar.properties.numericType != nil
            }
            if isLetter || isDigit || value == 0x2D {
                word.append(scalar)
                if isLetter { letters += 1 }
            } else if !word.isEmpty {
                finish()
            }
        }
        if !word.isEmpty { finish() }
        return counts.sorted { $0.value != $1.value ? $0.value > $1.value : (order[$0.key] ?? 0) < (order[$1.key] ?? 0) }
            .prefix(count).map(\.key)
    }

}

@Suite struct EnrichmentEquivalenceTests {
    static let awkward: [String] = [
        "", " ", "\n\n", "a\r\nb\rc\n\rd", "\u{00A0}lead\u{00A0}nbsp\u{00A0} \u{00A0}x",
        "zero\u{200B}width\u{200D}joiner\u{FEFF}bom\u{0085}nel", "İstanbul İSTANBUL straße STRASSE ǅemal",
        "naïve café—crème brûlée, über-cool -dash- --- x-y-z", "emoji 🦀🦀 rust 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ① ② ③ ٣٤٥ digits",
        "\t\tindented\tcode  with   runs\u{0007}\u{007F}\u{0001}", String(repeating: "wörd ", count: 30),
        String(repeating: "long-hyphenated-word-that-keeps-going-on-and-on ", count: 3),
    ]

    @Test func fastEnrichersMatchTheReference() throws {
        var documents = Self.awkward
        var reader = try CSVReader(path: TestDataset.file("csv/batch_1.csv"))
        defer { reader.close() }
        _ = try reader.next()  // header
        while documents.count < 2_500, let record = try reader.next() {
            documents.append(record.fields.joined(separator: ". "))
        }
        for limit in [40, 16_000] {
            let fast = CleanupEnricher(maximumCharacters: limit)
            let reference = ReferenceEnrichment(maximumCharacters: limit, count: 8)
            for document in documents { #expect(fast.clean(document) == reference.clean(document)) }
        }
        let fast = KeywordEnricher(count: 8)
        let reference = ReferenceEnrichment(maximumCharacters: 0, count: 8)
        for document in documents { #expect(fast.keywords(document) == reference.keywords(document)) }
    }
}
