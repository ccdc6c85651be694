import Foundation
import SextantBench
import SextantDatasets
import SextantIndex
import SextantKernels
import SextantTestSupport
import Synchronization
import Testing

private func bruteForce(_ vectors: [[Float]], live: (Int) -> Bool, query: [Float], k: Int, metric: Metric) -> [Int] {
    func distance(_ a: [Float], _ b: [Float]) -> Double {
        switch metric {
        case .l2: return zip(a, b).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
        case .innerProduct: return 1 - zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        case .cosine:
            let dot = zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            let na = a.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            let nb = b.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            return 1 - dot / (na * nb)
        }
    }
    return vectors.indices.filter(live).map { ($0, distance(query, vectors[$0])) }
        .sorted { $0.1 < $1.1 }.prefix(k).map(\.0)
}

@Suite struct HNSWIndexTests {
    @Test(arguments: Metric.allCases)
    func graphInvariantsHoldAfterBuild(metric: Metric) throws {
        let vectors = randomVectors(count: 3_000, dimensions: 24, seed: 1)
        let index = try HNSWIndex(dimensions: 24, metric: metric, parameters: HNSWParameters(m: 8, efConstruction: 64),
                                  capacity: 4_000)
        for (slot, vector) in vectors.enumerated() { try index.insert(slot: UInt32(slot), vector: vector) }
        index.repairConnectivity()
        #expect(index.invariantViolations() == [])
        #expect(index.liveCount == 3_000)
        // Searches through the graph (not the small-collection scan) find near-exact neighbours.
        var hits = 0
        for query in randomVectors(count: 50, dimensions: 24, seed: 2) {
            let found = try index.search(query, k: 10, ef: 100, strategy: .graph).hits.map { Int($0.slot) }
            let truth = bruteForce(vectors, live: { _ in true }, query: query, k: 10, metric: metric)
            hits += Set(found).intersection(truth).count
        }
        #expect(Double(hits) / 500 >= 0.9)
    }

    @Test func rejectsBadInput() throws {
        let index = try HNSWIndex(dimensions: 4, metric: .l2, capacity: 10)
        #expect(throws: IndexError.dimensionMismatch(expected: 4, actual: 3)) { try index.insert(slot: 0, vector: [1, 2, 3]) }
        #expect(throws: IndexError.nonFiniteVector) { try index.insert(slot: 0, vector: [1, .nan, 3, 4]) }
        #expect(throws: IndexError.slotOutOfRange(10)) { try index.insert(slot: 10, vector: [1, 2, 3, 4]) }
        try index.insert(slot: 0, vector: [1, 2, 3, 4])
        #expect(throws: IndexError.slotInUse(0)) { try index.insert(slot: 0, vector: [1, 2, 3, 4]) }
        #expect(throws: IndexError.self) { try index.search([1, 2, 3, 4], k: 0) }
        #expect(throws: IndexError.nonFiniteVector) { try index.search([1, 2, .infinity, 4], k: 1) }
        #expect(throws: IndexError.self) { try HNSWIndex(dimensions: 0, metric: .l2, capacity: 10) }
        #expect(throws: IndexError.self) {
            try HNSWIndex(dimensions: 4, metric: .l2, parameters: HNSWParameters(m: 1), capacity: 10)
        }
    }

    @Test func deleteHidesAndReclaimReusesSlots() throws {
        let dimensions = 16
        var vectors = randomVectors(count: 4_000, dimensions: dimensions, seed: 3)
        let index = try HNSWIndex(dimensions: dimensions, metric: .l2, parameters: HNSWParameters(m: 8, efConstruction: 80),
                                  capacity: 4_000)
        for (slot, vector) in vectors.enumerated() { try index.insert(slot: UInt32(slot), vector: vector) }
        var deleted = Set<Int>()
        for slot in stride(from: 0, to: 4_000, by: 3) {
            #expect(index.markDeleted(UInt32(slot)))
            deleted.insert(slot)
        }
        #expect(!index.markDeleted(0), "deleting twice reports nothing to delete")
        #expect(index.liveCount == 4_000 - deleted.count)
        // Deleted vectors never come back, even when the query is exactly one of them.
        for slot in deleted.prefix(100) {
            let hits = try index.search(vectors[slot], k: 10, ef: 64, strategy: .graph).hits
            #expect(hits.count == 10)
            #expect(hits.allSatisfy { !deleted.contains(Int($0.slot)) })
        }
        let freed = index.reclaimDeleted()
        #expect(Set(freed.map(Int.init)) == deleted)
        #expect(index.invariantViolations() == [])
        // Upsert = a fresh vector in a reused slot; the old vector is gone.
        for slot in freed {
            vectors[Int(slot)] = randomVectors(count: 1, dimensions: dimensions, seed: 1000 + UInt64(slot))[0]
            try index.insert(slot: slot, vector: vectors[Int(slot)])
        }
        #expect(index.liveCount == 4_000)
        #expect(index.invariantViolations() == [])
        var exact = 0
        for slot in freed.prefix(200) {
            let top = try index.search(vectors[Int(slot)], k: 1, ef: 64, strategy: .graph).hits
            if top.first?.slot == slot { exact += 1 }
        }
        #expect(exact >= 196, "a replaced vector is its own nearest neighbour")
    }

    /// Writers delete while upkeep reclaims (they never wait for it): a node
    /// deleted mid-pass must not keep links to the slots this pass frees, or a
    /// record reusing such a slot on fewer levels is reached on levels it lacks.
    @Test func aDeletionDuringReclaimLeavesNoLinkToAFreedSlot() throws {
        let dimensions = 16
        let count = 3_000
        let vectors = randomVectors(count: count, dimensions: dimensions, seed: 31)
        let index = try HNSWIndex(dimensions: dimensions, metric: .l2, parameters: HNSWParameters(m: 6, efConstruction: 60),
                                  capacity: count)
        for (slot, vector) in vectors.enumerated() { try index.insert(slot: UInt32(slot), vector: vector) }
        for slot in stride(from: 0, to: count, by: 2) { index.markDeleted(UInt32(slot)) }
        // The pass visits the survivors 1, 3, 5, …; after each it deletes every
        // other one just ahead of it, before the pass reaches it.
        var visited = 0
        let freed = index.reclaimDeleted {
            let ahead = UInt32(2 * visited + 3)
            visited += 1
            if ahead % 4 == 1 && Int(ahead) < count { index.markDeleted(ahead) }
        }
        #expect(freed.count == count / 2)
        let stillDeleted = stride(from: 5, to: count, by: 4).map(UInt32.init)
        for slot in stillDeleted { #expect(!index.markDeleted(slot), "deleted during the pass, reclaimed by the next") }
        index.repairConnectivity()  // three quarters deleted at m 6 can orphan a node; that is upkeep's other job
        #expect(index.invariantViolations() == [])
        let freedSet = Set(freed)
        for slot in stillDeleted {
            for level in 0...3 { #expect(index.neighbors(of: slot, level: level).allSatisfy { !freedSet.contains($0) }) }
        }
        #expect(Set(index.reclaimDeleted()) == Set(stillDeleted))
        index.repairConnectivity()
        #expect(index.invariantViolations() == [])
    }

    /// A small move keeps the node, its links and its slot; a large one is
    /// refused with nothing changed (the caller then writes a new node).
    @Test(arguments: [Quantization.none, .int8])
    func smallMovesKeepTheNodeLargeOnesAreRefused(quantization: Quantization) throws {
        let dimensions = 32
        var vectors = randomVectors(count: 3_000, dimensions: dimensions, seed: 41)
        let index = try HNSWIndex(dimensions: dimensions, metric: .l2, parameters: HNSWParameters(m: 8, efConstruction: 80),
                                  capacity: 3_000, quantization: quantization)
        try index.fitQuantizer(vectors)
        for (slot, vector) in vectors.enumerated() { try index.insert(slot: UInt32(slot), vector: vector) }
        func halves(_ vector: [Float]) -> [UInt16] { vector.map { Float16($0).bitPattern } }
        var movedCount = 0
        for slot in 0..<1_000 {
            var target = vectors[slot]
            target[slot % dimensions] += 0.01
            if halves(target).withUnsafeBufferPointer({ index.moveVector(slot: UInt32(slot), halves: $0) }) {
                vectors[slot] = target
                movedCount += 1
            }
        }
        #expect(movedCount >= 990, "a 0.01 step is small beside 32-d neighbour distances")
        let far = vectors[2_000].map { -$0 }
        #expect(!halves(far).withUnsafeBufferPointer { index.moveVector(slot: 2_000, halves: $0) })
        #expect(index.invariantViolations() == [])
        for slot in stride(from: 0, to: 1_000, by: 50) {
            let top = try index.search(vectors[slot], k: 1, ef: 64, strategy: .graph).hits
            #expect(top.first?.slot == UInt32(slot), "a moved node is found at its new place")
            var stored = [Float](repeating: 0, count: dimensions)
            stored.withUnsafeMutableBufferPointer { index.readVector(UInt32(slot), into: $0) }
            #expect(zip(stored, vectors[slot]).allSatisfy { abs($0 - $1) < 1e-2 })
        }
        var unchanged = [Float](repeating: 0, count: dimensions)
        unchanged.withUnsafeMutableBufferPointer { index.readVector(2_000, into: $0) }
        #expect(zip(unchanged, vectors[2_000]).allSatisfy { abs($0 - $1) < 1e-2 }, "a refused move changes nothing")
    }

    @Test func deletingEveryNodeEmptiesTheIndex() throws {
        let index = try HNSWIndex(dimensions: 8, metric: .cosine, capacity: 100)
        for (slot, vector) in randomVectors(count: 100, dimensions: 8, seed: 4).enumerated() {
            try index.insert(slot: UInt32(slot), vector: vector)
        }
        for slot in 0..<100 { index.markDeleted(UInt32(slot)) }
        #expect(try index.search([1, 0, 0, 0, 0, 0, 0, 0], k: 5).hits.isEmpty)
        #expect(index.reclaimDeleted().count == 100)
        #expect(index.state.maxLevel == -1)
        try index.insert(slot: 42, vector: [1, 0, 0, 0, 0, 0, 0, 0])
        #expect(try index.search([1, 0, 0, 0, 0, 0, 0, 0], k: 5).hits.map(\.slot) == [42])
    }

    @Test func filteredSearchIsExactAgainstBruteForce() throws {
        let dimensions = 32
        let count = 6_000
        let vectors = randomVectors(count: count, dimensions: dimensions, seed: 5)
        let index = try HNSWIndex(dimensions: dimensions, metric: .cosine, parameters: HNSWParameters(m: 12, efConstruction: 100),
                                  capacity: count)
        for (slot, vector) in vectors.enumerated() { try index.insert(slot: UInt32(slot), vector: vector) }
        let queries = randomVectors(count: 30, dimensions: dimensions, seed: 6)
        // Selectivities from a handful of matches to half the collection.
        for modulus in [1_000, 300, 50, 7, 2] {
            let matches: (UInt32) -> Bool = { Int($0) % modulus == 0 }
            var recallHits = 0
            var expectedTotal = 0
            for query in queries {
                let outcome = try index.search(query, k: 10, ef: 64, filter: SlotFilter(matches: matches))
                let truth = bruteForce(vectors, live: { matches(UInt32($0)) }, query: query, k: 10, metric: .cosine)
                #expect(outcome.hits.count == truth.count, "never fewer than k when k match (1/\(modulus))")
                #expect(outcome.hits.allSatisfy { matches($0.slot) })
                recallHits += Set(outcome.hits.map { Int($0.slot) }).intersection(truth).count
                expectedTotal += truth.count
                if count / modulus <= HNSWIndex.exactScanMatchLimit, let last = truth.last {
                    #expect(outcome.usedExactScan, "a selective filter is answered by an exact scan")
                    // Exact up to float16 rounding: nothing returned is farther than the k-th true match.
                    let bound = cosine(query, vectors[last]) + 2e-3
                    #expect(outcome.hits.allSatisfy { cosine(query, vectors[Int($0.slot)]) <= bound })
                }
            }
            #expect(Double(recallHits) / Double(expectedTotal) >= 0.95, "filtered recall at 1/\(modulus)")
        }
        // An explicit candidate list (as a payload index provides) is scanned exactly.
        let candidates: [UInt32] = [5, 17, 4_999, 3]
        let outcome = try index.search(queries[0], k: 10, filter: SlotFilter(candidates: candidates) { candidates.contains($0) })
        #expect(Set(outcome.hits.map(\.slot)) == Set(candidates))
    }

    @Test func insertsWhileSearchingNeverTearResults() throws {
        let dimensions = 32
        let count = 6_000
        let vectors = randomVectors(count: count, dimensions: dimensions, seed: 7)
        let index = try HNSWIndex(dimensions: dimensions, metric: .l2, parameters: HNSWParameters(m: 8, efConstruction: 64),
                                  capacity: count)
        for slot in 0..<500 { try index.insert(slot: UInt32(slot), vector: vectors[slot]) }
        let done = Atomic<Bool>(false)
        let problems = Mutex<[String]>([])
        let searches = Atomic<Int>(0)
        let finished = Atomic<Int>(0)
        let queries = randomVectors(count: 64, dimensions: dimensions, seed: 8)
        for worker in 1...2 {
            Thread.detachNewThread {
                var round = 0
                while !done.load(ordering: .acquiring) {
                    let query = queries[(round + worker) % queries.count]
                    round += 1
                    guard let hits = try? index.search(query, k: 10, ef: 32, strategy: .graph).hits else {
                        problems.withLock { $0.append("search threw") }
                        continue
                    }
                    searches.add(1, ordering: .relaxed)
                    let slots = hits.map(\.slot)
                    if Set(slots).count != slots.count { problems.withLock { $0.append("duplicate slot in results") } }
                    for (previous, next) in zip(hits, hits.dropFirst()) where previous.distance > next.distance {
                        problems.withLock { $0.append("results out of order") }
                    }
                    for hit in hits {
                        let stored = index.storedVector(hit.slot)
                        let expected = zip(stored, query).reduce(Float(0)) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
                        if abs(expected - hit.distance) > 1e-3 * max(1, expected) {
                            problems.withLock { $0.append("distance \(hit.distance) does not match stored vector (\(expected))") }
                        }
                    }
                }
                finished.add(1, ordering: .releasing)
            }
        }
        // The writer starts only once the readers are searching, so the two really overlap.
        let readyBy = Date().addingTimeInterval(30)
        while searches.load(ordering: .relaxed) < 5 && Date() < readyBy { usleep(1_000) }
        for slot in 500..<count { try index.insert(slot: UInt32(slot), vector: vectors[slot]) }
        let searchesDuringInserts = searches.load(ordering: .relaxed)
        done.store(true, ordering: .releasing)
        while finished.load(ordering: .acquiring) < 2 { usleep(1_000) }
        #expect(problems.withLock { $0 } == [])
        #expect(searchesDuringInserts > 10)
        #expect(index.liveCount == count)
        index.repairConnectivity()
        #expect(index.invariantViolations() == [])
    }

    @Test func parallelBuildKeepsInvariants() throws {
        let vectors = randomVectors(count: 5_000, dimensions: 16, seed: 9)
        let index = try HNSWIndex(dimensions: 16, metric: .cosine, parameters: HNSWParameters(m: 8, efConstruction: 64),
                                  capacity: 5_000)
        let next = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            while true {
                let slot = next.add(1, ordering: .relaxed).oldValue
                if slot >= vectors.count { return }
                try? index.insert(slot: UInt32(slot), vector: vectors[slot])
            }
        }
        #expect(index.liveCount == 5_000)
        index.repairConnectivity()
        #expect(index.invariantViolations() == [])
    }

    @Test(arguments: [Quantization.none, .int8])
    func localityRenumberingKeepsAnswersAndShortensLinks(quantization: Quantization) throws {
        // Forty clusters written interleaved (record i in cluster i % 40): in
        // insertion order every neighbour is far away in slot numbers.
        var generator = SeededGenerator(seed: 21)
        let centers = randomVectors(count: 40, dimensions: 32, seed: 23)
        let vectors = (0..<4_000).map { row in centers[row % 40].map { $0 + Float.random(in: -0.1...0.1, using: &generator) } }
        let index = try HNSWIndex(dimensions: 32, metric: .cosine, parameters: HNSWParameters(m: 8, efConstruction: 64),
                                  capacity: 4_000, quantization: quantization)
        if quantization.usesCodes { try index.fitQuantizer(Array(vectors.prefix(1_000))) }
        for (slot, vector) in vectors.enumerated() { try index.insert(slot: UInt32(slot), vector: vector) }
        for slot in stride(from: 0, to: 4_000, by: 97) { #expect(index.markDeleted(UInt32(slot))) }
        index.repairConnectivity()
        let queries = randomVectors(count: 40, dimensions: 32, seed: 22)
        let before = try queries.map { try index.search($0, k: 10, ef: 80, strategy: .graph).hits }
        // The share of level-0 links between slots at most 64 apart: a walk from
        // a node to its near neighbours then stays on nearby pages.
        func shortLinkShare() -> Double {
            var short = 0
            var links = 0
            for slot in 0..<UInt32(4_000) where index.isLinked(slot) {
                for neighbor in index.neighbors(of: slot, level: 0) {
                    if abs(Int(neighbor) - Int(slot)) <= 64 { short += 1 }
                    links += 1
                }
            }
            return Double(short) / Double(max(links, 1))
        }
        let shortBefore = shortLinkShare()
        let storedBefore = (0..<UInt32(200)).map { index.storedVector($0) }

        let order = index.localityOrder()
        #expect(Set(order).count == 4_000, "every slot placed once")
        try index.renumber(order)
        #expect(index.invariantViolations() == [])
        #expect(index.liveCount == 4_000 - (4_000 + 96) / 97)
        for (query, expected) in zip(queries, before) {
            let after = try index.search(query, k: 10, ef: 80, strategy: .graph).hits
            // The same records at the same distances: slot n now holds old slot order[n].
            #expect(after.map { order[Int($0.slot)] } == expected.map(\.slot))
            #expect(after.map(\.distance) == expected.map(\.distance))
        }
        for (new, old) in order.enumerated() where old < 200 {
            #expect(index.storedVector(UInt32(new)) == storedBefore[Int(old)])
        }
        #expect(shortLinkShare() > 4 * shortBefore, "neighbours sit near each other after a locality numbering")

        #expect(throws: IndexError.self) { try index.renumber(Array(order.dropLast())) }
        #expect(throws: IndexError.self) { try index.renumber(order.map { _ in 0 }) }
    }

    @Test func connectivityRepairReconnectsOrphans() throws {
        // A small M on clustered data orphans nodes readily; the repair must find and link every one.
        var generator = SeededGenerator(seed: 12)
        let centers = randomVectors(count: 20, dimensions: 8, seed: 13)
        let vectors = (0..<4_000).map { index in
            centers[index % 20].map { $0 + Float.random(in: -0.05...0.05, using: &generator) }
        }
        let index = try HNSWIndex(dimensions: 8, metric: .l2, parameters: HNSWParameters(m: 4, efConstruction: 16),
                                  capacity: 4_000)
        for (slot, vector) in vectors.enumerated() { try index.insert(slot: UInt32(slot), vector: vector) }
        let before = index.invariantViolations()
        let repaired = index.repairConnectivity()
        #expect(before.isEmpty == (repaired == 0))
        #expect(index.invariantViolations() == [])
        #expect(index.repairConnectivity() == 0, "a second pass finds nothing")

        // Orphans made on purpose, as back-link pruning makes them: every level-0
        // link into three nodes removed. The repair must find and reconnect each.
        let orphans = ([17, 1_234, 3_999] as [UInt32]).filter { $0 != index.state.entrySlot }
        for orphan in orphans { #expect(index.removeIncomingLinks(to: orphan) > 0) }
        #expect(index.invariantViolations().contains { $0.contains("unreachable") })
        #expect(index.repairConnectivity() >= orphans.count)
        #expect(index.invariantViolations() == [])
        for orphan in orphans {
            // A walk wide enough to visit everything reachable finds the orphan again.
            let hits = try index.search(vectors[Int(orphan)], k: 4_000, ef: 4_000, strategy: .graph).hits
            #expect(hits.contains { $0.slot == orphan }, "orphan \(orphan) is reachable by a graph walk")
        }
    }
}

private func cosine(_ a: [Float], _ b: [Float]) -> Double {
    let dot = zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    let na = a.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
    let nb = b.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
    return 1 - dot / (na * nb)
}

/// Recall on the real debian-minilm data. Heavy: the suite is run on release builds.
@Suite struct DebianMiniLMRecallTests {
    @Test(arguments: [Quantization.none, .int8])
    func recallAtTenMeetsTargetAtDefaultEf(quantization: Quantization) throws {
        let base = try VectorFiles.readFvecs(TestDataset.file("base.fvecs"))
        let queries = try VectorFiles.readFvecs(TestDataset.file("queries.fvecs"), expectedDimensions: 384)
        let truth = try VectorFiles.readIvecs(TestDataset.file("groundtruth.ivecs"))
        let parameters = HNSWParameters()
        let index = try HNSWIndex(dimensions: 384, metric: .cosine, parameters: parameters, capacity: base.rows,
                                  quantization: quantization)
        if quantization.usesCodes { try index.fitQuantizer(stride(from: 0, to: base.rows, by: 4).map { Array(base.row($0)) }) }
        let next = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 2) { _ in
            while true {
                let row = next.add(1, ordering: .relaxed).oldValue
                if row >= base.rows { return }
                try? base.withRow(row) { try index.insert(slot: UInt32(row), vector: $0) }
            }
        }
        #expect(index.liveCount == base.rows)
        index.repairConnectivity()
        #expect(index.invariantViolations() == [])
        var hits = 0
        for row in 0..<queries.rows {
            let found = try queries.withRow(row) { try index.search($0, k: 10).hits }
            // Ties: the data holds duplicate vectors, so a hit is anything as close as the 10th true neighbour.
            let tenth = truth.row(row)[truth.row(row).startIndex + 9]
            let threshold = cosineDistance(queries.row(row), base.row(Int(tenth)))
            hits += found.filter { cosineDistance(queries.row(row), base.row(Int($0.slot))) <= threshold + 1e-6 }.count
        }
        let recall = Double(hits) / Double(queries.rows * 10)
        #expect(recall >= 0.95, "recall@10 at ef=\(parameters.ef) with \(quantization) is \(recall)")
        if quantization.usesCodes {
            // The engine's own accounting of what a search keeps resident (graph,
            // node table, codes) against the kernel's, after every query ran.
            let regions = index.regions
            let measured = [regions.level0, regions.nodeInfo, regions.upper, regions.codes].compactMap { $0 }.reduce(0) {
                $0 + ProcessMemory.residentBytes(ofRangeStarting: $1.base, length: $1.reservedBytes)
            }
            let accounted = index.residentSearchBytes
            #expect(abs(measured - accounted) <= accounted / 20 + 4 * 65_536,
                    "accounted \(accounted) resident bytes, /proc/self/smaps says \(measured)")
            #expect(Double(accounted) / Double(base.rows) < 600, "codes + graph + node table per vector")
        }
    }

    private func cosineDistance(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Double {
        var dot = 0.0, na = 0.0, nb = 0.0
        for (x, y) in zip(a, b) {
            dot += Double(x) * Double(y)
            na += Double(x) * Double(x)
            nb += Double(y) * Double(y)
        }
        return 1 - dot / (na * nb).squareRoot()
    }
}
