import Foundation
import SextantDatasets
import SextantKernels
import SextantPayload
import SextantStorage

/// The workload of the crash trials: several concurrent writers, each with its
/// own id space, each issuing a deterministic sequence of batches (mostly
/// upserts of new debian-minilm records, with metadata updates and deletes of
/// earlier ones mixed in). Because the sequence is a pure function of the seed,
/// the verifier can recompute the exact state after any prefix of batches.
public struct CrashPlan: Sendable {
    public let seed: UInt64
    public let writers: Int
    public let records: [DatasetRecord]
    public let vectors: FloatVectorFile

    public init(seed: UInt64, writers: Int, records: [DatasetRecord], vectors: FloatVectorFile) {
        self.seed = seed
        self.writers = writers
        self.records = records
        self.vectors = vectors
    }

    public static let collectionName = "crash"

    /// One batch of one writer.
    public enum Batch: Sendable {
        case upsert([RecordInput])
        case delete([String])
    }

    private func random(_ writer: Int, _ batch: Int, _ salt: UInt64) -> UInt64 {
        var x = seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(writer) &* 0xBF58_476D_1CE4_E5B9 &+ UInt64(batch) &* 0x94D0_49BB_1331_11EB &+ salt
        x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
        x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
        return x ^ (x >> 31)
    }

    /// Records owned by a writer, in the order it writes them.
    private func owned(_ writer: Int) -> [Int] { Array(stride(from: writer, to: records.count, by: writers)) }

    public func id(_ writer: Int, _ recordIndex: Int) -> String { "w\(writer)-\(records[recordIndex].id)" }

    /// Batches of `writer`, from the first; stops when its records are used up.
    public func batches(for writer: Int) -> [Batch] {
        let mine = owned(writer)
        var batches: [Batch] = []
        var next = 0
        var written: [Int] = []
        var number = 0
        while next < mine.count {
            let roll = random(writer, number, 1) % 10
            if roll == 0 && written.count > 20 {
                // delete a few earlier records
                let count = Int(random(writer, number, 2) % 5) + 1
                let victims = (0..<count).map { written[Int(random(writer, number, 3 + UInt64($0)) % UInt64(written.count))] }
                let ids = Array(Set(victims.map { id(writer, $0) })).sorted()
                batches.append(.delete(ids))
            } else if roll == 1 && written.count > 20 {
                // re-upsert earlier records with new metadata (an update)
                let count = Int(random(writer, number, 4) % 8) + 1
                let chosen = Array(Set((0..<count).map { written[Int(random(writer, number, 10 + UInt64($0)) % UInt64(written.count))] })).sorted()
                batches.append(.upsert(chosen.map { record(writer, $0, batch: number) }))
            } else {
                let size = Int(random(writer, number, 5) % 250) + 20
                let chunk = mine[next..<min(next + size, mine.count)]
                batches.append(.upsert(chunk.map { record(writer, $0, batch: number) }))
                written.append(contentsOf: chunk)
                next += chunk.count
            }
            number += 1
        }
        return batches
    }

    func record(_ writer: Int, _ index: Int, batch: Int) -> RecordInput {
        let source = records[index]
        var metadata: Metadata = source.strings.mapValues { .string($0) }
        metadata["installed_size"] = .int(Int64(source.installedSize))
        metadata["writer"] = .int(Int64(writer))
        metadata["batch"] = .int(Int64(batch))
        metadata["stable"] = .bool(batch % 2 == 0)
        return RecordInput(id: id(writer, index), vector: Array(vectors.row(index)), document: source.embeddedText,
                           metadata: metadata)
    }

    /// The state a writer's records must be in after its first `count` batches.
    public func expectedState(writer: Int, afterBatches count: Int) -> [String: RecordInput] {
        var state: [String: RecordInput] = [:]
        for batch in batches(for: writer).prefix(count) {
            switch batch {
            case .upsert(let records): for record in records { state[record.id] = record }
            case .delete(let ids): for id in ids { state[id] = nil }
            }
        }
        return state
    }

    /// The vector as the engine stores it (normalised, float16) and returns it.
    public static func storedVector(_ vector: [Float], metric: Metric) -> [Float] {
        var prepared = vector
        if metric.normalizesVectors { prepared.withUnsafeMutableBufferPointer { VectorMath.normalize($0) } }
        return prepared.map { HalfConversion.toFloat(HalfConversion.toHalf($0)) }
    }

    /// Loads what the plan needs from the dataset folder (the first `limit` records).
    public static func load(dataset: String, seed: UInt64, writers: Int, limit: Int) throws -> CrashPlan {
        let records = try DebianMiniLM.records(dataset, limit: limit)
        let vectors = try VectorFiles.readFvecs(dataset + "/base.fvecs")
        return CrashPlan(seed: seed, writers: writers, records: records, vectors: vectors)
    }
}
