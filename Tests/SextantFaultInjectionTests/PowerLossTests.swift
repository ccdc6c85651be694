import SextantFaultInjection
import SextantStorage
import Testing

/// The fault-injecting file system keeps exactly what was synced, and the
/// storage layer loses no acknowledged write at any cut of a workload of
/// batches, re-upserts, updates, deletes, checkpoints and WAL rotations.
/// `tools/crash/power-loss --trials N` runs the long version.
@Suite struct PowerLossTests {
    static func bytes(_ disk: FaultInjectionFileSystem, _ path: String) throws -> [UInt8] {
        let file = try disk.open(path, .read)
        defer { disk.close(file) }
        var buffer = [UInt8](repeating: 0, count: try disk.sizeBytes(file))
        _ = try buffer.withUnsafeMutableBytes { try disk.read(file, into: $0, at: 0) }
        return buffer
    }

    static func write(_ disk: FaultInjectionFileSystem, _ file: FileDescriptor, _ bytes: [UInt8], at offset: Int) throws {
        try bytes.withUnsafeBytes { try disk.write(file, $0, at: offset) }
    }

    @Test func theDiskKeepsWhatWasSyncedAndOnlyThat() throws {
        let disk = FaultInjectionFileSystem()
        try disk.makeDirectory("/d")
        try disk.syncDirectory("/")
        let file = try disk.open("/d/a", .create)
        try Self.write(disk, file, [1, 2, 3], at: 0)
        try disk.syncData(file)
        try disk.syncDirectory("/d")
        try Self.write(disk, file, [4, 5], at: 3)  // never synced
        try disk.makeDirectory("/d/new")  // its name never synced
        let other = try disk.open("/d/b", .create)
        try Self.write(disk, other, [9], at: 0)
        try disk.sync(other)  // the contents are durable, the name is not
        try disk.rename("/d/a", "/d/renamed")  // never synced

        let dropped = disk.survivingImage(.dropUnsynced, seed: 1)
        #expect(try Self.bytes(dropped, "/d/a") == [1, 2, 3])
        #expect(!dropped.exists("/d/renamed"))
        #expect(!dropped.exists("/d/new"))
        #expect(!dropped.exists("/d/b"), "a synced file whose directory entry was not synced is gone")

        // Everything after the power went fails, and the dead disk stays dead.
        #expect(disk.isPoweredOff)
        #expect(throws: StorageError.self) { try disk.makeDirectory("/late") }

        // The tear keeps every unsynced write but cuts the last one at a sector.
        let torn = FaultInjectionFileSystem()
        let log = try torn.open("/log", .create)
        try torn.syncDirectory("/")
        try Self.write(torn, log, [UInt8](repeating: 7, count: 100), at: 0)
        try torn.syncData(log)
        try Self.write(torn, log, [UInt8](repeating: 8, count: 5_000), at: 100)
        let image = torn.survivingImage(.tearLastPage, seed: 3)
        let kept = try Self.bytes(image, "/log")
        #expect(kept.prefix(100).allSatisfy { $0 == 7 })
        #expect(kept.count >= 4_096 && kept.count < 5_100 && (kept.count - 4_096) % 512 == 0,
                "the write lands up to a sector of its last page: \(kept.count) bytes")

        // A random prefix of the unsynced writes, in their order.
        let prefixDisk = FaultInjectionFileSystem()
        let f = try prefixDisk.open("/f", .create)
        try prefixDisk.syncDirectory("/")
        for index in 0..<10 { try Self.write(prefixDisk, f, [UInt8(index)], at: index) }
        var lengths = Set<Int>()
        for seed in 0..<40 as Range<UInt64> {
            let bytes = try Self.bytes(prefixDisk.survivingImage(.keepRandomPrefix, seed: seed), "/f")
            #expect(bytes == (0..<bytes.count).map { UInt8($0) })
            lengths.insert(bytes.count)
        }
        #expect(lengths.count > 3, "different seeds keep different prefixes")
    }

    @Test func aCutAfterEveryOperationOfASmallWorkloadLosesNothing() async throws {
        let summary = await PowerLossRun(trials: 1, seed: 11, steps: 6, exhaustive: true).run()
        #expect(summary.workloadOperations > 20)
        #expect(summary.trials == summary.workloadOperations * 3)
        #expect(summary.failures.isEmpty, "\(summary.failures.prefix(3))")
    }

    @Test func randomCutsDuringALongerWorkloadLoseNothing() async throws {
        let summary = await PowerLossRun(trials: 60, seed: 29, steps: 40).run()
        #expect(summary.acknowledgedSteps > 60, "the cuts fall after real work")
        #expect(summary.failures.isEmpty, "\(summary.failures.prefix(3))")
    }

    @Test func aDiskThatIgnoresFsyncIsCaught() async throws {
        var trial = PowerLossTrial(seed: 5, steps: 20, cutAfterOperations: nil, variant: .dropUnsynced)
        trial.syncsLie = true
        let outcome = await trial.run()
        #expect(outcome.acknowledgedSteps == 20)
        #expect(!outcome.problems.isEmpty, "acknowledged writes on a lying disk cannot survive a cut")
    }
}
