import Foundation
import SextantJSON
import SextantTestSupport
import Testing

/// `sextant soak` as users run it: the real binary, which runs the engine
/// (and the API) as child processes. Short versions of the month-long and
/// ten-minute runs; the figures of the full runs are in docs/RELIABILITY.md.
@Suite("sextant soak", .serialized)
struct SoakRunTests {
    static func report(_ stdout: String) throws -> JSONValue {
        let line = try #require(stdout.split(separator: "\n").last { $0.hasPrefix("{") }, "a JSON report on stdout")
        return try JSON.parse(Array(line.utf8))
    }

    @Test func aFewDaysOfTheFeedKeepEveryCountAndMeasureEachDay() throws {
        let work = TemporaryDirectory("sextant-soak-feed")
        defer { work.remove() }
        let (status, stdout, stderr) = try SextantBinary.run([
            "soak", "feed", "--dataset", TestDataset.debianMiniLM, "--work", work.path, "--days", "4", "--records-per-day", "3000",
            "--lifetime-days", "1-1", "--day-seconds", "3", "--clients", "4", "--qps-per-client", "50", "--recall-queries", "60",
            "--steady-from-day", "3", "--json",
        ])
        #expect(status == 0, "\(stderr.suffix(3_000))")
        let report = try Self.report(stdout)
        let days = try #require(report["days"]?.arrayValue)
        #expect(days.count == 4)
        for day in days {
            // The engine's count is the model's, every day: nothing lost, nothing resurrected.
            #expect(day["live_records"]?.intValue == day["live_expected"]?.intValue, "\(JSON.serialize(day))")
            #expect((day["queries"]?.intValue ?? 0) > 0)
            #expect(day["query_errors"]?.intValue == 0)
            #expect((day["rss_bytes"]?.intValue ?? 0) > 0 && (day["disk_bytes"]?.intValue ?? 0) > 0)
            #expect((day["recall_at_10"]?.doubleValue ?? 0) >= 0.9, "\(JSON.serialize(day))")
        }
        // Lifetimes of one day: from day 3 on, each day deletes what day - 2 published.
        #expect((days[2]["deleted"]?.intValue ?? 0) > 2_000)
        #expect(days.map { $0["backups"]?.intValue ?? 0 }.reduce(0, +) >= 8)
        #expect(report["backup_failures"]?.intValue == 0)
        #expect(report["reopen_count"]?.intValue == days.last?["live_expected"]?.intValue)
        #expect(report["targets"]?["counts_match"]?.boolValue == true)

        let csv = try String(contentsOfFile: work.file("soak.csv"), encoding: .utf8)
        #expect(csv.split(separator: "\n").count == 5)
        let png = try #require(FileManager.default.contents(atPath: work.file("soak.png")), "gnuplot drew the plot")
        #expect(Array(png.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        #expect(!FileManager.default.fileExists(atPath: work.file("data/engine")), "the engine's data is removed afterwards")
    }

    @Test func theAPIUnderManyClientsAnswersWithoutServerErrors() throws {
        let work = TemporaryDirectory("sextant-soak-api")
        defer { work.remove() }
        let (status, stdout, stderr) = try SextantBinary.run([
            "soak", "api", "--dataset", TestDataset.debianMiniLM, "--work", work.path, "--clients", "32", "--seconds", "8",
            "--sample-seconds", "1", "--steady-from-seconds", "3", "--records", "3000", "--json",
        ])
        #expect(status == 0, "\(stderr.suffix(3_000))")
        let report = try Self.report(stdout)
        #expect((report["requests"]?.intValue ?? 0) > 100)
        #expect(report["status_5xx"]?.intValue == 0)
        #expect(report["transport_errors"]?.intValue == 0)
        #expect(report["status_4xx_other"]?.intValue == 0, "every prepared request is valid")
        let samples = try #require(report["samples"]?.arrayValue)
        #expect(samples.count >= 6)
        #expect(samples.allSatisfy { ($0["api_rss_bytes"]?.intValue ?? 0) > 0 })
        #expect(FileManager.default.fileExists(atPath: work.file("api-soak.csv")))
    }

    @Test func theReplicaLagBenchmarkSeesEveryWriteOnTheReplica() throws {
        let work = TemporaryDirectory("sextant-bench-replica")
        defer { work.remove() }
        let (status, stdout, stderr) = try SextantBinary.run([
            "bench", "replica", "--work", work.path, "--writes", "5", "--records-per-write", "20", "--dimensions", "16",
            "--ship-interval-ms", "100", "--pause-ms", "10", "--json",
        ])
        #expect(status == 0, "\(stderr.suffix(3_000))")
        let report = try Self.report(stdout)
        #expect(report["replica_records"]?.intValue == 100)
        let p50 = try #require(report["lag_p50_ms"]?.doubleValue)
        let maximum = try #require(report["lag_max_ms"]?.doubleValue)
        #expect(p50 > 0 && p50 <= maximum)
    }

    @Test func aFeedLongerThanTheVectorFileIsRefusedBeforeAnythingStarts() throws {
        let work = TemporaryDirectory("sextant-soak-refused")
        defer { work.remove() }
        let (status, _, stderr) = try SextantBinary.run([
            "soak", "feed", "--dataset", TestDataset.debianMiniLM, "--work", work.path, "--days", "30", "--records-per-day", "80000",
        ])
        #expect(status != 0)
        #expect(stderr.contains("make_scaled.py --records 2400000"), "\(stderr)")
        #expect(!FileManager.default.fileExists(atPath: work.file("engine.log")), "no engine was started")
    }

    @Test func anInterruptedSoakTakesItsEngineDownWithIt() throws {
        let work = TemporaryDirectory("sextant-soak-interrupted")
        defer { work.remove() }
        let soak = try SextantBinary.start([
            "soak", "feed", "--dataset", TestDataset.debianMiniLM, "--work", work.path, "--days", "2", "--records-per-day", "2000",
            "--day-seconds", "600",
        ], logPath: work.file("soak.log"))
        var enginePID: Int32?
        let deadline = Date().addingTimeInterval(60)
        while enginePID == nil, Date() < deadline, soak.isRunning {
            let log = (try? String(contentsOfFile: work.file("soak.log"), encoding: .utf8)) ?? ""
            if let range = log.range(of: "engine pid ") { enginePID = Int32(log[range.upperBound...].prefix { $0.isNumber }) }
            usleep(50_000)
        }
        let pid = try #require(enginePID, "the soak reported its engine")
        #expect(kill(pid, 0) == 0, "the engine runs")
        kill(soak.processIdentifier, SIGTERM)
        #expect(soak.waitForExit(timeoutSeconds: 90), "the soak exits on SIGTERM")
        #expect(soak.exitStatus == 128 + SIGTERM)
        // The engine was the soak's child: once stopped and reaped it is gone (or, reparented, a zombie no longer running).
        let gone = Date().addingTimeInterval(30)
        func running() -> Bool {
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else {
                return false
            }
            return !stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
        }
        while running() && Date() < gone { usleep(50_000) }
        #expect(!running(), "the engine stopped with the soak")
    }
}
