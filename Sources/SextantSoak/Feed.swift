import SextantPayload
import SextantSupport

/// Seed 003's tender feed as a deterministic model: what each simulated day
/// deletes and writes, and which records are live afterwards, so the soak can
/// check the engine's count and compute exact ground truth of the live set.
///
/// Each day starts by deleting the tenders whose deadline has passed, then
/// delivers the day's records as equal batches (the seed's four CSV drops).
/// A share of each batch re-publishes a live tender (same id, re-enriched, so
/// a new vector and metadata); the rest are new tenders, each with a deadline
/// a whole number of days ahead. With every lifetime at most `lifetimeDays`'
/// upper bound, the live set stops growing on that day and then holds about
/// new-per-day × mean lifetime records.
///
/// Every write takes the next row of the vector file, so no two live records
/// share a vector and the ground truth has no ties between ids.
public struct SoakFeed: Sendable {
    public struct Plan: Sendable, Codable, Equatable {
        public var days = 30
        public var recordsPerDay = 80_000
        public var batchesPerDay = 4
        /// Share of each batch that re-publishes a live tender.
        public var updateFraction = 0.10
        /// Days from publication to deadline (the tender is deleted the day after).
        public var lifetimeDays = 11...15
        public var seed: UInt64 = 1

        public init() {}

        /// Rows of the vector file the whole run consumes: one per write.
        public var rowsNeeded: Int { days * recordsPerDay }

        public func validate() throws(SoakError) {
            guard days >= 1, days <= 3_650 else { throw .invalid("days must be in 1...3650") }
            guard recordsPerDay >= 1, recordsPerDay <= 10_000_000 else { throw .invalid("records per day must be in 1...10,000,000") }
            guard batchesPerDay >= 1, batchesPerDay <= 96 else { throw .invalid("batches per day must be in 1...96") }
            guard updateFraction >= 0, updateFraction < 1 else { throw .invalid("the update fraction must be in [0, 1)") }
            guard lifetimeDays.lowerBound >= 0, lifetimeDays.upperBound <= 3_650 else {
                throw .invalid("lifetimes must be in 0...3650 days")
            }
        }
    }

    public struct Write: Sendable, Equatable {
        public var tender: Int32
        public var row: Int32
        public var published: Int16
        public var deadline: Int16
        public var isUpdate: Bool

        public var id: String { SoakFeed.id(tender) }
        public var document: String { "Tender \(tender) from buyer \(tender % 400): lot \(row), deadline day \(deadline)" }
        public var metadata: Metadata {
            ["buyer": .string("buyer-\(tender % 400)"), "published": .int(Int64(published)), "deadline": .int(Int64(deadline)),
             "value": .double(Double((Int(tender) &* 7_919) % 1_000_000) / 100)]
        }
    }

    public let plan: Plan
    public private(set) var nextRow = 0
    public private(set) var nextTender: Int32 = 0
    /// Live tenders in no particular order (a random one is picked for an update).
    public private(set) var liveTenders: [Int32] = []
    private var livePosition: [Int32] = []
    private var rowOfTender: [Int32] = []
    private var deadlineOfTender: [Int16] = []
    /// Whether row r holds a live record's current vector.
    public private(set) var rowIsLive: [Bool] = []
    /// Tenders by deadline day, deleted at the start of the following day.
    private var expiring: [Int: [Int32]] = [:]
    private var random: SplitMix64

    public init(plan: Plan) {
        self.plan = plan
        random = SplitMix64(seed: plan.seed)
        rowIsLive.reserveCapacity(plan.rowsNeeded)
    }

    public static func id(_ tender: Int32) -> String { "t\(tender)" }

    public var liveCount: Int { liveTenders.count }

    public func row(ofLive tender: Int32) -> Int? {
        guard Int(tender) < rowOfTender.count, livePosition[Int(tender)] >= 0 else { return nil }
        return Int(rowOfTender[Int(tender)])
    }

    /// The tenders whose deadline is before `day`, no longer live.
    public mutating func expire(day: Int) -> [Int32] {
        var removed: [Int32] = []
        for deadline in expiring.keys.sorted() where deadline < day {
            for tender in expiring.removeValue(forKey: deadline) ?? [] where livePosition[Int(tender)] >= 0 {
                removeLive(tender)
                rowIsLive[Int(rowOfTender[Int(tender)])] = false
                removed.append(tender)
            }
        }
        assert(liveTenders.count <= Int(nextTender), "no more live tenders than were ever published")
        return removed
    }

    /// Batch `index` of `day` (1-based day): its writes, applied to the model.
    public mutating func batch(day: Int, index: Int) -> [Write] {
        precondition(index >= 0 && index < plan.batchesPerDay, "batch index within the day")
        let base = plan.recordsPerDay / plan.batchesPerDay
        let count = index == plan.batchesPerDay - 1 ? plan.recordsPerDay - base * (plan.batchesPerDay - 1) : base
        var writes: [Write] = []
        writes.reserveCapacity(count)
        var touched = Set<Int32>()
        for _ in 0..<count {
            let row = Int32(nextRow)
            nextRow += 1
            rowIsLive.append(true)
            if !liveTenders.isEmpty, random.unit() < plan.updateFraction {
                let tender = liveTenders[Int(random.next() % UInt64(liveTenders.count))]
                if touched.insert(tender).inserted {
                    rowIsLive[Int(rowOfTender[Int(tender)])] = false
                    rowOfTender[Int(tender)] = row
                    writes.append(Write(tender: tender, row: row, published: Int16(day), deadline: deadlineOfTender[Int(tender)],
                                        isUpdate: true))
                    continue
                }
            }
            let tender = nextTender
            nextTender += 1
            let lifetime = plan.lifetimeDays.lowerBound
                + Int(random.next() % UInt64(plan.lifetimeDays.upperBound - plan.lifetimeDays.lowerBound + 1))
            let deadline = Int16(day + lifetime)
            rowOfTender.append(row)
            deadlineOfTender.append(deadline)
            livePosition.append(Int32(liveTenders.count))
            liveTenders.append(tender)
            expiring[Int(deadline), default: []].append(tender)
            touched.insert(tender)
            writes.append(Write(tender: tender, row: row, published: Int16(day), deadline: deadline, isUpdate: false))
        }
        assert(writes.count == count && Set(writes.map(\.tender)).count == count, "a batch names each tender once")
        return writes
    }

    private mutating func removeLive(_ tender: Int32) {
        let position = Int(livePosition[Int(tender)])
        let last = liveTenders.removeLast()
        if last != tender {
            liveTenders[position] = last
            livePosition[Int(last)] = Int32(position)
        }
        livePosition[Int(tender)] = -1
    }
}

public enum SoakError: Error, CustomStringConvertible, Equatable {
    case invalid(String)
    case engine(String)
    case inconsistent(String)

    public var description: String {
        switch self {
        case .invalid(let message): "invalid soak settings: \(message)"
        case .engine(let message): "engine: \(message)"
        case .inconsistent(let message): "the engine disagrees with the feed: \(message)"
        }
    }
}
