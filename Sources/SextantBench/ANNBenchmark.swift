import Foundation
import SextantDatasets
import SextantIndex
import SextantKernels
import SextantSupport
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `sextant bench ann`: builds the engine's own index from an fvecs file and
/// measures recall@k and single-thread queries per second for several ef values.
///
/// The base file is streamed (never loaded whole), so the process's peak
/// resident memory is the index's. With quantization the float16 vectors are
/// written to a file after the build and mapped back, as a checkpoint leaves
/// them: the walk reads codes, and only the candidates ranked exactly touch
/// the file. `cold` evicts that file from the page cache before every pass.
public struct ANNBenchmark {
    public struct Configuration: Sendable {
        public var basePath: String
        public var queriesPath: String
        public var groundTruthPath: String
        public var k = 10
        public var efValues = [16, 32, 64, 128, 256]
        public var parameters = HNSWParameters()
        public var metric = Metric.cosine
        public var quantization = Quantization.none
        public var buildThreads = 1
        /// Query each ef this many times over the whole query set and keep the best
        /// pass (a shared machine's noise only ever slows a pass down).
        public var passes = 3
        /// Evict the float16 vectors from the page cache before each timed pass.
        public var cold = false
        /// Where the float16 vectors file goes when they are moved out of memory.
        public var workDirectory = "/tmp"
        /// Renumber slots in locality order after the build (`localityOrder`);
        /// `.compare` measures every ef before and after, on the same graph.
        public var localityOrder = LocalityOrder.on
        /// Candidates a quantized walk hands to the exact float16 ranking, each
        /// measured per ef (nil: `HNSWIndex.defaultRerankCount`).
        public var rerankValues: [Int?] = [nil]

        public init(basePath: String, queriesPath: String, groundTruthPath: String) {
            self.basePath = basePath
            self.queriesPath = queriesPath
            self.groundTruthPath = groundTruthPath
        }
    }

    public struct Result: Codable, Sendable {
        public var ef: Int
        public var recall: Double
        public var qps: Double
        public var build_seconds: Double
        /// Vectors, graph and codes actually used, per vector.
        public var bytes_per_vector: Double
        /// What a search needs resident (graph, node table, and codes or float16 vectors), per vector.
        public var resident_bytes_per_vector: Double
        public var peak_rss_bytes: Int
        public var recall_by_id: Double
        public var k: Int
        public var build_threads: Int
        public var kernels: String
        public var quantization: String
        public var cold: Bool
        public var vectors: Int
        public var distances_per_query: Double
        /// Candidates ranked exactly (0: the index default).
        public var rerank: Int
        /// Whether slots were renumbered in locality order before this measurement.
        public var locality_order: Bool
    }

    public enum LocalityOrder: String, Sendable, CaseIterable { case on, off, compare }

    public let configuration: Configuration
    public init(configuration: Configuration) { self.configuration = configuration }

    /// Rows read from the base file per step of the build.
    static let buildChunkRows = 1_024
    /// Vectors the code book is fitted on (spread over the file): ranges per
    /// dimension settle well before this, and the sample is held in memory.
    static let fitSampleRows = 16_384
    /// Build progress is reported every this many rows.
    static let progressRows = 100_000

    public func run(progress: @escaping @Sendable (String) -> Void = { _ in }) throws -> [Result] {
        let config = configuration
        guard config.k >= 1 else { throw DatasetError.malformed("--k", "k must be at least 1") }
        let base = try FvecsReader(path: config.basePath)
        let queries = try VectorFiles.readFvecs(config.queriesPath, expectedDimensions: base.dimensions)
        let truth = try VectorFiles.readIvecs(config.groundTruthPath)
        guard truth.rows == queries.rows else {
            throw DatasetError.malformed(config.groundTruthPath, "\(truth.rows) rows for \(queries.rows) queries")
        }
        guard truth.dimensions >= config.k else {
            throw DatasetError.malformed(config.groundTruthPath, "holds top-\(truth.dimensions), k is \(config.k)")
        }
        progress("base: \(base.rows) vectors (\(base.dimensions)-d), streamed; \(queries.rows) queries")
        let index = try HNSWIndex(
            dimensions: base.dimensions, metric: config.metric, parameters: config.parameters, capacity: base.rows,
            quantization: config.quantization)
        let start = ContinuousClock.now
        if config.quantization.usesCodes { try index.fitQuantizer(try Self.sample(base, rows: Self.fitSampleRows)) }
        try build(index, base, threads: config.buildThreads, progress: progress)
        let buildSeconds = (ContinuousClock.now - start).seconds
        progress(String(format: "built in %.2f s with %d thread(s)", buildSeconds, config.buildThreads))
        let thresholds = try kthTrueDistances(base: base, queries: queries, truth: truth, k: config.k, metric: config.metric)
        var results: [Result] = []
        var vectorsFile: VectorsFile? = nil
        defer { vectorsFile?.remove() }
        // Results name slots; after a renumbering `rows` maps them back to base rows.
        var rows: [UInt32]? = nil
        if config.localityOrder == .compare || config.localityOrder == .off {
            if config.quantization.usesCodes { vectorsFile = try VectorsFile.moveOut(index, directory: config.workDirectory) }
            results += try measure(index, base, queries, truth, thresholds, rows: nil, buildSeconds: buildSeconds, vectorsFile,
                                   progress)
        }
        if config.localityOrder == .compare || config.localityOrder == .on {
            // Locality-ordered slot numbers, in place.
            let renumberStart = ContinuousClock.now
            let order = index.localityOrder()
            if let file = vectorsFile {
                try index.renumber(order, movingVectors: false)
                vectorsFile = try file.rewritten(order, over: index)
            } else {
                try index.renumber(order)
                if config.quantization.usesCodes { vectorsFile = try VectorsFile.moveOut(index, directory: config.workDirectory) }
            }
            rows = order
            progress(String(format: "slots renumbered in locality order in %.2f s", (ContinuousClock.now - renumberStart).seconds))
            results += try measure(index, base, queries, truth, thresholds, rows: rows, buildSeconds: buildSeconds, vectorsFile,
                                   progress)
        }
        return results
    }

    private func measure(_ index: HNSWIndex, _ base: FvecsReader, _ queries: FloatVectorFile, _ truth: VectorFile<Int32>,
                         _ thresholds: [Double], rows: [UInt32]?, buildSeconds: Double, _ vectorsFile: VectorsFile?,
                         _ progress: (String) -> Void) throws
        -> [Result]
    {
        let config = configuration
        if let vectorsFile { progress("float16 vectors in \(vectorsFile.path) (\(vectorsFile.sizeBytes) bytes)") }
        let used = index.usedBytes
        let bytesPerVector = Double(used.vectors + used.graph + used.codes) / Double(base.rows)
        let residentPerVector = Double(index.residentSearchBytes) / Double(base.rows)
        var results: [Result] = []
        for ef in config.efValues { for rerank in config.rerankValues {
            var best = Double.infinity
            var found: [[UInt32]] = []
            var computed = 0
            for _ in 0..<max(1, config.passes) {
                if config.cold { evict(index, vectorsFile) }
                let start = ContinuousClock.now
                var pass: [[UInt32]] = []
                pass.reserveCapacity(queries.rows)
                for row in 0..<queries.rows {
                    let outcome = try queries.withRow(row) { try index.search($0, k: config.k, ef: ef, strategy: .graph, rerank: rerank) }
                    pass.append(outcome.hits.map { rows?[Int($0.slot)] ?? $0.slot })
                    computed += outcome.distanceComputations
                }
                let seconds = (ContinuousClock.now - start).seconds
                if seconds < best { best = seconds }
                found = pass
            }
            let recall = try Self.recall(found, base: base, queries: queries, thresholds: thresholds, k: config.k,
                                         metric: config.metric)
            let recallById = Self.recallById(found, truth: truth, k: config.k)
            results.append(Result(
                ef: ef, recall: recall, qps: Double(queries.rows) / best, build_seconds: buildSeconds,
                bytes_per_vector: bytesPerVector, resident_bytes_per_vector: residentPerVector,
                peak_rss_bytes: ProcessMemory.peakResidentBytes(), recall_by_id: recallById, k: config.k,
                build_threads: config.buildThreads, kernels: index.kernels.level.rawValue,
                quantization: config.quantization.rawValue, cold: config.cold, vectors: base.rows,
                distances_per_query: Double(computed) / Double(queries.rows * max(1, config.passes)), rerank: rerank ?? 0,
                locality_order: rows != nil))
        } }
        return results
    }

    /// Up to `rows` base vectors spread evenly over the file (the code book's fit).
    static func sample(_ base: FvecsReader, rows: Int) throws -> [[Float]] {
        let count = min(rows, base.rows)
        return try (0..<count).map { index in try base.row(index * base.rows / count) }
    }

    private func build(_ index: HNSWIndex, _ base: FvecsReader, threads: Int, progress: @escaping @Sendable (String) -> Void) throws {
        let next = Atomic<Int>(0)
        let failure = Mutex<(any Error)?>(nil)
        let chunk = Self.buildChunkRows
        let started = ContinuousClock.now
        DispatchQueue.concurrentPerform(iterations: max(1, threads)) { _ in
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: chunk * base.dimensions)
            defer { buffer.deallocate() }
            while failure.withLock({ $0 == nil }) {
                let first = next.add(chunk, ordering: .relaxed).oldValue
                if first >= base.rows { return }
                let count = min(chunk, base.rows - first)
                if first > 0 && first % Self.progressRows < chunk {
                    progress(String(format: "%d rows inserted in %.1f s", first, (ContinuousClock.now - started).seconds))
                }
                do {
                    try base.read(first, count: count, into: buffer)
                    for row in 0..<count {
                        try index.insert(
                            slot: UInt32(first + row),
                            vector: UnsafeBufferPointer(start: buffer + row * base.dimensions, count: base.dimensions))
                    }
                } catch {
                    failure.withLock { $0 = error }
                    return
                }
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
        let repairStart = ContinuousClock.now
        let repaired = index.repairConnectivity()  // part of a build: the engine's indexer runs it when it goes idle
        progress(String(format: "connectivity repair: %d orphans reconnected in %.2f s", repaired, (ContinuousClock.now - repairStart).seconds))
    }

    /// A cold pass: the float16 vectors leave the page cache (and the mapping),
    /// so every exact ranking reads them from the disk again.
    private func evict(_ index: HNSWIndex, _ file: VectorsFile?) {
        index.regions.vectors.evictAndForgetAdvice(upTo: index.usedBytes.vectors)
        file?.dropFromPageCache()
    }

    /// Distance of the k-th true neighbour, recomputed in Double from the f32 data.
    private func kthTrueDistances(base: FvecsReader, queries: FloatVectorFile, truth: VectorFile<Int32>, k: Int,
                                  metric: Metric) throws -> [Double] {
        try (0..<queries.rows).map { row in
            let id = Int(truth.row(row)[truth.row(row).startIndex + k - 1])
            return Self.exactDistance(queries.row(row), try base.row(id)[...], metric)
        }
    }

    static func exactDistance(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>, _ metric: Metric) -> Double {
        var dot = 0.0, normA = 0.0, normB = 0.0, l2 = 0.0
        for (x, y) in zip(a, b) {
            let dx = Double(x), dy = Double(y)
            dot += dx * dy
            normA += dx * dx
            normB += dy * dy
            l2 += (dx - dy) * (dx - dy)
        }
        switch metric {
        case .cosine: return 1 - dot / max((normA * normB).squareRoot(), 1e-30)
        case .innerProduct: return 1 - dot
        case .l2: return l2
        }
    }

    /// A result counts as a hit when it is at least as close as the k-th true
    /// neighbour (within 1e-6): the dataset has exact duplicate vectors, and
    /// which of two equal records the ground truth names is arbitrary.
    static func recall(_ found: [[UInt32]], base: FvecsReader, queries: FloatVectorFile, thresholds: [Double],
                       k: Int, metric: Metric) throws -> Double {
        var hits = 0
        for (row, slots) in found.enumerated() {
            for slot in slots.prefix(k)
            where exactDistance(queries.row(row), try base.row(Int(slot))[...], metric) <= thresholds[row] + 1e-6 {
                hits += 1
            }
        }
        return Double(hits) / Double(found.count * k)
    }

    static func recallById(_ found: [[UInt32]], truth: VectorFile<Int32>, k: Int) -> Double {
        var hits = 0
        for (row, slots) in found.enumerated() {
            let expected = Set(truth.row(row).prefix(k).map { UInt32($0) })
            hits += slots.prefix(k).filter { expected.contains($0) }.count
        }
        return Double(hits) / Double(found.count * k)
    }
}

/// The float16 vectors of an index written to a file and mapped back over
/// their region (MAP_PRIVATE | MAP_FIXED), as a checkpoint leaves them: the
/// anonymous copies are released, and pages come back only when read.
struct VectorsFile {
    let path: String
    let sizeBytes: Int

    static func moveOut(_ index: HNSWIndex, directory: String) throws -> VectorsFile {
        let path = directory + "/sextant-bench-vectors-\(getpid()).f16"
        let bytes = index.usedBytes.vectors
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw DatasetError.unreadable(path, String(cString: strerror(errno))) }
        defer { close(fd) }
        var offset = 0
        while offset < bytes {
            let written = pwrite(fd, index.regions.vectors.base + offset, min(1 << 24, bytes - offset), off_t(offset))
            guard written > 0 else { throw DatasetError.unreadable(path, "write failed: \(String(cString: strerror(errno)))") }
            offset += written
        }
        fsync(fd)
        let length = MemoryRegion.pageRounded(bytes)
        guard length > 0 else { return VectorsFile(path: path, sizeBytes: bytes) }
        let mapped = mmap(index.regions.vectors.base, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0)
        guard mapped == index.regions.vectors.base else {
            throw DatasetError.unreadable(path, "mmap failed: \(String(cString: strerror(errno)))")
        }
        let file = VectorsFile(path: path, sizeBytes: bytes)
        file.dropFromPageCache()  // the build's writes: what a restarted engine would find
        return file
    }

    /// This file's vectors written to a new file in `order` (new slot n holds
    /// old slot order[n]), read with pread so none of them is mapped, and the new
    /// file mapped over `index`'s vectors region in place of this one.
    func rewritten(_ order: [UInt32], over index: HNSWIndex) throws -> VectorsFile {
        let newPath = path + ".renumbered"
        let stride = index.layout.vectorStrideBytes
        let bytes = order.count * stride
        let input = open(path, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw DatasetError.unreadable(path, String(cString: strerror(errno))) }
        defer { close(input) }
        let fd = open(newPath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw DatasetError.unreadable(newPath, String(cString: strerror(errno))) }
        defer { close(fd) }
        let chunkRows = 4_096
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunkRows * stride, alignment: 64)
        defer { buffer.deallocate() }
        var new = 0
        while new < order.count {
            let count = min(chunkRows, order.count - new)
            for row in 0..<count {
                guard pread(input, buffer + row * stride, stride, off_t(Int(order[new + row]) * stride)) == stride else {
                    throw DatasetError.unreadable(path, "short read")
                }
            }
            guard pwrite(fd, buffer, count * stride, off_t(new * stride)) == count * stride else {
                throw DatasetError.unreadable(newPath, "write failed: \(String(cString: strerror(errno)))")
            }
            new += count
        }
        fsync(fd)
        let length = MemoryRegion.pageRounded(bytes)
        if length > 0 {
            let mapped = mmap(index.regions.vectors.base, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0)
            guard mapped == index.regions.vectors.base else {
                throw DatasetError.unreadable(newPath, "mmap failed: \(String(cString: strerror(errno)))")
            }
        }
        remove()
        let file = VectorsFile(path: newPath, sizeBytes: bytes)
        file.dropFromPageCache()
        return file
    }

    func dropFromPageCache() {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
        close(fd)
    }

    func remove() { unlink(path) }
}

/// This process's memory, from the kernel's own accounting.
public enum ProcessMemory {
    /// VmHWM: the peak resident set since the process started.
    public static func peakResidentBytes() -> Int { statusField("VmHWM:") }
    public static func residentBytes() -> Int { statusField("VmRSS:") }

    /// A /proc file read to its end (they report a size of 0, so reading by size gets nothing).
    static func procText(_ path: String) -> String? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        return (try? handle.readToEnd()).map { String(decoding: $0, as: UTF8.self) }
    }

    private static func statusField(_ name: String) -> Int {
        guard let text = procText("/proc/self/status"),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name) })
        else { return 0 }
        let kilobytes = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
        return kilobytes * 1_024
    }

    /// Resident bytes of the mappings that overlap [start, start + length),
    /// summed from /proc/self/smaps (the check on the engine's own accounting).
    public static func residentBytes(ofRangeStarting start: UnsafeRawPointer, length: Int) -> Int {
        guard let text = procText("/proc/self/smaps") else { return 0 }
        let lower = UInt(bitPattern: start)
        let upper = lower + UInt(length)
        var total = 0
        var inside = false
        for line in text.split(separator: "\n") {
            if let dash = line.firstIndex(of: "-"), line.first?.isHexDigit == true, line[..<dash].allSatisfy(\.isHexDigit) {
                let fields = line.split(separator: " ")
                let bounds = fields[0].split(separator: "-")
                let from = UInt(bounds[0], radix: 16) ?? 0
                let to = UInt(bounds[1], radix: 16) ?? 0
                inside = from < upper && to > lower
            } else if inside, line.hasPrefix("Rss:") {
                total += (Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0) * 1_024
            }
        }
        return total
    }
}
