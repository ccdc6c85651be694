import Foundation
import SextantIndex
import SextantKernels
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One checkpoint's worth of data, mapped: the index's regions (vectors,
/// graph, node table, upper levels, and codes when the collection quantizes),
/// the slot table and the record heap. Files in a generation are written once and never
/// modified, so a snapshot can hard-link them; changes after the checkpoint go
/// to private copy-on-write pages until the next checkpoint writes a new
/// generation, which replaces this one for new readers (old readers keep theirs
/// until they finish: ARC frees it).
final class Generation: @unchecked Sendable {
    let number: UInt64
    let index: HNSWIndex
    let records: RecordStore
    /// Each mapped file's path and size: a checkpoint copies their unchanged
    /// bytes file to file instead of reading them through the mapping.
    let files: [String: (path: String, sizeBytes: Int)]

    enum FileName {
        static let vectors = "vectors.f16"
        static let level0 = "level0.u32"
        static let nodes = "nodes.bin"
        static let upper = "upper.u32"
        static let slots = "slots.bin"
        static let heap = "heap.bin"
        static let codes = "codes.bin"
        static let all = [vectors, level0, nodes, upper, slots, heap, codes]
    }

    private init(number: UInt64, index: HNSWIndex, records: RecordStore, files: [String: (path: String, sizeBytes: Int)]) {
        self.number = number
        self.index = index
        self.records = records
        self.files = files
    }

    static func empty(layout: HNSWLayout, disk: Files) throws -> Generation {
        try open(directory: nil, manifest: nil, layout: layout, verify: false, disk: disk)
    }

    /// Maps a generation's files (verifying each file's size and CRC32C first
    /// when `verify`); a missing or damaged file fails with its name.
    static func open(directory: String?, manifest: Manifest?, layout: HNSWLayout, verify: Bool, disk: Files) throws
        -> Generation
    {
        var files: [String: (path: String, sizeBytes: Int)] = [:]
        if verify, let directory, let manifest { try verifyFiles(directory: directory, manifest: manifest, disk: disk) }
        func region(_ name: String, reserved: Int) throws -> MemoryRegion {
            guard let directory, let manifest, let digest = manifest.files[name] else {
                return try MappedRegions.make(files: disk, reservedBytes: reserved, file: nil, fileBytes: 0)
            }
            let path = directory + "/" + name
            guard disk.exists(path) else { throw StorageError.corrupted("\(path): missing") }
            guard digest.sizeBytes <= reserved else { throw StorageError.corrupted("\(path): larger than the collection's capacity") }
            files[name] = (path, digest.sizeBytes)
            return try MappedRegions.make(files: disk, reservedBytes: reserved, file: path, fileBytes: digest.sizeBytes)
        }
        if layout.quantization.usesCodes, let manifest, !manifest.files.isEmpty, manifest.files[FileName.codes] == nil {
            throw StorageError.corrupted("\(directory ?? "generation"): a quantized collection without its codes file")
        }
        let regions = HNSWRegions(
            vectors: try region(FileName.vectors, reserved: layout.vectorRegionBytes),
            level0: try region(FileName.level0, reserved: layout.level0RegionBytes),
            nodeInfo: try region(FileName.nodes, reserved: layout.nodeInfoRegionBytes),
            upper: try region(FileName.upper, reserved: layout.upperRegionBytes),
            codes: layout.quantization.usesCodes ? try region(FileName.codes, reserved: layout.codeRegionBytes) : nil)
        let index: HNSWIndex
        do { index = try HNSWIndex(layout: layout, regions: regions, state: manifest?.index ?? HNSWState()) } catch {
            throw StorageError.corrupted("\(directory ?? "generation"): index state does not fit its files: \(error)")
        }
        let heapUsedBytes = manifest?.heapUsedBytes ?? 0
        let records = RecordStore(
            slots: try region(FileName.slots, reserved: layout.capacity * RecordStore.slotStrideBytes),
            heap: try region(FileName.heap, reserved: StorageLimits.reservedHeapBytes(compacted: heapUsedBytes)),
            heapUsedBytes: heapUsedBytes, capacity: layout.capacity)
        return Generation(number: manifest?.generation ?? 0, index: index, records: records, files: files)
    }

    /// Checks every file's size and CRC32C against the manifest, largest first
    /// on every core: at a million records this read is most of an open. A
    /// failure names its file (the first by name when several fail).
    static func verifyFiles(directory: String, manifest: Manifest, disk: Files) throws {
        let names = manifest.files.sorted { $0.value.sizeBytes > $1.value.sizeBytes }.map(\.key)
        let next = Atomic<Int>(0)
        let failures = Mutex<[String: String]>([:])
        DispatchQueue.concurrentPerform(iterations: min(names.count, max(1, ProcessInfo.processInfo.activeProcessorCount))) { _ in
            while true {
                let index = next.add(1, ordering: .relaxed).oldValue
                guard index < names.count else { return }
                let name = names[index]
                guard let digest = manifest.files[name] else { continue }
                let path = directory + "/" + name
                let problem: String?
                if !disk.exists(path) {
                    problem = "\(path): missing"
                } else {
                    do {
                        let actual = try disk.checksum(path)
                        if actual.size != digest.sizeBytes {
                            problem = "\(path): size \(actual.size) bytes, manifest says \(digest.sizeBytes)"
                        } else {
                            problem = actual.crc == digest.crc32c ? nil : "\(path): checksum mismatch"
                        }
                    } catch {
                        problem = "\(path): \(error)"
                    }
                }
                if let problem { failures.withLock { $0[name] = problem } }
            }
        }
        if let first = failures.withLock({ $0.sorted { $0.key < $1.key }.first }) {
            throw StorageError.corrupted(first.value)
        }
    }

    struct Dump {
        var files: [String: FileDigest] = [:]
        var heapUsedBytes = 0
        var writers: [ChecksummedWriter] = []
    }

    /// Writes this generation's current contents into `directory` as the next
    /// generation: index regions byte for byte, the record heap compacted to
    /// live records with a rewritten slot table. Files are written but not yet
    /// fsynced (`finish` does that, after writers resume). Callers pause every
    /// writer and the indexer first, so the copy is of one LSN.
    func dump(to directory: String, slotHighWater: Int, disk: Files) throws -> Dump {
        try disk.makeDirectories(directory)
        var dump = Dump()
        let layout = index.layout
        let state = index.state
        let highWater = max(slotHighWater, Int(state.slotHighWater))
        func copy(_ name: String, _ region: MemoryRegion, _ bytes: Int, writesNoted: Bool = false) throws {
            let writer: ChecksummedWriter
            if writesNoted, let backing = files[name], backing.sizeBytes > 0 {
                // Unchanged bytes go file to file in the kernel; only pages written
                // since the checkpoint come from memory. A vectors file that the
                // walk no longer reads (quantized) is never paged in for this.
                // Only a region whose every writer notes its pages may be copied
                // so: the graph's lists, node entries and codes change in place
                // everywhere, and are resident anyway, so they come from memory.
                writer = try disk.compose(
                    directory + "/" + name, copying: min(backing.sizeBytes, bytes), of: backing.path,
                    patches: region.writtenRanges(below: bytes), from: region.base, sizeBytes: bytes)
            } else {
                var fresh = try ChecksummedWriter(files: disk, path: directory + "/" + name)
                var offset = 0
                while offset < bytes {
                    let chunk = min(1 << 20, bytes - offset)
                    try fresh.write(UnsafeRawBufferPointer(start: region.base + offset, count: chunk))
                    offset += chunk
                }
                writer = fresh
            }
            dump.files[name] = FileDigest(sizeBytes: writer.size, crc32c: writer.crc)
            dump.writers.append(writer)
        }
        try copy(FileName.vectors, index.regions.vectors, highWater * layout.vectorStrideBytes, writesNoted: true)
        try copy(FileName.level0, index.regions.level0, highWater * layout.level0StrideWords * 4)
        try copy(FileName.nodes, index.regions.nodeInfo, highWater * HNSWLayout.nodeInfoStrideBytes)
        try copy(FileName.upper, index.regions.upper, Int(state.upperBlocksUsed) * layout.upperStrideWords * 4)
        if let codes = index.regions.codes { try copy(FileName.codes, codes, highWater * layout.codeStrideBytes) }

        // Compact the heap: live records only, slot table rewritten to match.
        var table = [UInt8](repeating: 0, count: highWater * RecordStore.slotStrideBytes)
        var heapWriter = try ChecksummedWriter(files: disk, path: directory + "/" + FileName.heap)
        var heapOffset = 0
        try table.withUnsafeMutableBytes { (raw) throws in
            for slot in 0..<UInt32(highWater) where records.isLive(slot) {
                guard let bytes = records.recordBytes(slot) else { continue }
                try heapWriter.write(bytes)
                let entry = Int(slot) * RecordStore.slotStrideBytes
                raw.storeBytes(of: UInt64(heapOffset), toByteOffset: entry, as: UInt64.self)
                raw.storeBytes(of: UInt32(bytes.count), toByteOffset: entry + 8, as: UInt32.self)
                raw.storeBytes(of: UInt32(1), toByteOffset: entry + 12, as: UInt32.self)
                heapOffset += bytes.count
            }
        }
        dump.files[FileName.heap] = FileDigest(sizeBytes: heapWriter.size, crc32c: heapWriter.crc)
        dump.writers.append(heapWriter)
        dump.heapUsedBytes = heapOffset
        var slotWriter = try ChecksummedWriter(files: disk, path: directory + "/" + FileName.slots)
        try table.withUnsafeBytes { (raw) throws in try slotWriter.write(raw) }
        dump.files[FileName.slots] = FileDigest(sizeBytes: slotWriter.size, crc32c: slotWriter.crc)
        dump.writers.append(slotWriter)
        return dump
    }

    static func finish(_ dump: Dump, directory: String, disk: Files) throws {
        for writer in dump.writers { try writer.syncAndClose() }
        try disk.syncDirectory(directory)
    }
}
