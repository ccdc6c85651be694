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

@Suite struct ScheduleTests {
    func date(_ text: String) -> Date {
        var parts = tm()
        let numbers = text.split(whereSeparator: { !$0.isNumber }).compactMap { Int32($0) }
        parts.tm_year = numbers[0] - 1900
        parts.tm_mon = numbers[1] - 1
        parts.tm_mday = numbers[2]
        parts.tm_hour = numbers[3]
        parts.tm_min = numbers[4]
        parts.tm_isdst = -1
        return Date(timeIntervalSince1970: Double(mktime(&parts)))
    }

    @Test func cronNextRuns() throws {
        let everySixHours = try CronExpression("0 */6 * * *")
        #expect(everySixHours.next(after: date("2026-11-28 21:15")) == date("2026-11-29 00:00"))
        #expect(everySixHours.next(after: date("2026-11-29 00:00")) == date("2026-11-29 06:00"))
        let weekdays = try CronExpression("30 9 * * mon-fri")
        #expect(weekdays.next(after: date("2026-11-28 10:00")) == date("2026-11-30 09:30"))  // Saturday → Monday
        let monthly = try CronExpression("@monthly")
        #expect(monthly.next(after: date("2026-11-28 10:00")) == date("2026-12-01 00:00"))
        let list = try CronExpression("5,35 1-2 * feb *")
        #expect(list.next(after: date("2026-11-28 10:00")) == date("2027-02-01 01:05"))
        for bad in ["* * * *", "61 * * * *", "*/0 * * * *", "5-1 * * * *", "x * * * *"] {
            #expect(throws: IngestError.self) { try CronExpression(bad) }
        }
    }

    @Test func durations() throws {
        #expect(try Schedule.parseDuration("6h") == 21_600)
        #expect(try Schedule.parseDuration("30m") == 1_800)
        #expect(try Schedule.parseDuration("45") == 45)
        #expect(throws: IngestError.self) { try Schedule.parseDuration("soon") }
        #expect(Schedule.interval(seconds: 60).next(after: Date(timeIntervalSince1970: 0)) == Date(timeIntervalSince1970: 60))
        #expect(Schedule.once.next(after: Date()) == nil)
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
