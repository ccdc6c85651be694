import Foundation
import SextantDatasets
import SextantSoak
import SextantTestSupport
import Testing

@Suite("The soak's feed model")
struct SoakFeedTests {
    static func plan(days: Int = 12, perDay: Int = 2_000, lifetimes: ClosedRange<Int> = 2...4) -> SoakFeed.Plan {
        var plan = SoakFeed.Plan()
        plan.days = days
        plan.recordsPerDay = perDay
        plan.lifetimeDays = lifetimes
        plan.updateFraction = 0.2
        plan.seed = 7
        return plan
    }

    @Test func theSameSeedReplaysTheSameFeed() {
        var first = SoakFeed(plan: Self.plan())
        var second = SoakFeed(plan: Self.plan())
        for day in 1...5 {
            #expect(first.expire(day: day) == second.expire(day: day))
            for batch in 0..<4 { #expect(first.batch(day: day, index: batch) == second.batch(day: day, index: batch)) }
        }
        #expect(first.liveTenders == second.liveTenders)
    }

    @Test func theModelKeepsExactlyTheTendersBeforeTheirDeadline() throws {
        let plan = Self.plan()
        var feed = SoakFeed(plan: plan)
        // An independent account of the same feed: id -> (row, deadline).
        var live: [Int32: (row: Int32, deadline: Int16)] = [:]
        var rowsSeen = Set<Int32>()
        for day in 1...plan.days {
            let expired = feed.expire(day: day)
            for tender in expired {
                let removed = live.removeValue(forKey: tender)
                let entry = try #require(removed, "only live tenders expire")
                #expect(Int(entry.deadline) < day, "a tender is deleted only after its deadline")
            }
            #expect(!live.values.contains { Int($0.deadline) < day }, "every tender past its deadline is deleted")
            var written = 0
            for batch in 0..<plan.batchesPerDay {
                let writes = feed.batch(day: day, index: batch)
                written += writes.count
                #expect(Set(writes.map(\.tender)).count == writes.count, "a batch names a tender once")
                for write in writes {
                    #expect(rowsSeen.insert(write.row).inserted, "every write takes a fresh row")
                    if write.isUpdate {
                        let before = try #require(live[write.tender], "only a live tender is re-published")
                        #expect(before.deadline == write.deadline, "re-publishing keeps the deadline")
                    } else {
                        #expect(live[write.tender] == nil)
                        #expect(plan.lifetimeDays.contains(Int(write.deadline) - day))
                    }
                    live[write.tender] = (write.row, write.deadline)
                }
            }
            #expect(written == plan.recordsPerDay)
            #expect(feed.liveCount == live.count)
            for (tender, entry) in live { #expect(feed.row(ofLive: tender) == Int(entry.row)) }
            #expect(feed.rowIsLive.lazy.filter { $0 }.count == live.count, "exactly the live tenders' current rows are live")
        }
        #expect(feed.nextRow == plan.rowsNeeded)
    }

    @Test func theLiveSetLevelsOffOnceTheLongestLifetimeHasPassed() {
        let plan = Self.plan(days: 14, perDay: 4_000, lifetimes: 2...4)
        var feed = SoakFeed(plan: plan)
        var counts: [Int] = []
        for day in 1...plan.days {
            _ = feed.expire(day: day)
            for batch in 0..<plan.batchesPerDay { _ = feed.batch(day: day, index: batch) }
            counts.append(feed.liveCount)
        }
        let steady = counts[6...]
        // New tenders a day (about 80% of 4,000) times a mean lifetime of 3 days, then 1 more day before deletion.
        #expect(steady.allSatisfy { $0 > 9_000 && $0 < 15_000 })
        #expect(Double(steady.max() ?? 0) / Double(steady.min() ?? 1) < 1.1)
    }

    @Test func badPlansAreRefused() {
        var plan = Self.plan()
        plan.updateFraction = 1
        #expect(throws: SoakError.self) { try plan.validate() }
        plan = Self.plan(days: 0)
        #expect(throws: SoakError.self) { try plan.validate() }
    }

    @Test func exactNeighboursMatchABruteForceScan() throws {
        let reader = try FvecsReader(path: TestDataset.file("base.fvecs"))
        let rows = 0..<6_000
        let queries = try (0..<25).map { try reader.row(30_000 + $0 * 13) }
        let live: (Int) -> Bool = { $0 % 3 != 1 }
        let found = try ExactNeighbours.search(queries, in: reader, rows: rows, k: 10, isLive: live)
        var vectors: [[Float]] = []
        for row in rows { vectors.append(try reader.row(row)) }
        func cosine(_ a: [Float], _ b: [Float]) -> Double {
            var dot = 0.0, na = 0.0, nb = 0.0
            for i in a.indices {
                dot += Double(a[i] * b[i])
                na += Double(a[i] * a[i])
                nb += Double(b[i] * b[i])
            }
            return dot / (na.squareRoot() * nb.squareRoot())
        }
        for (index, query) in queries.enumerated() {
            let expected = rows.filter(live).map { ($0, cosine(query, vectors[$0])) }.sorted { $0.1 > $1.1 }.prefix(10).map(\.0)
            #expect(found[index].count == 10)
            // Equal as sets; the order may differ only between near ties.
            #expect(Set(found[index]) == Set(expected), "query \(index)")
            #expect(found[index].allSatisfy(live))
        }
    }
}
