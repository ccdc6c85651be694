import SextantIndex
import SextantKernels

/// The storage layer's file helpers, each a short sequence of `FileSystem`
/// calls, so that every byte the layer writes and every sync it relies on goes
/// through the one interface a power-loss test can replace.
struct Files: Sendable {
    let system: any FileSystem

    init(_ system: any FileSystem) { self.system = system }

    func exists(_ path: String) -> Bool { system.exists(path) }
    func list(_ path: String) -> [String] { system.list(path) }
    func size(_ path: String) -> Int? { system.sizeBytes(path) }

    /// Creates `path` and any missing parents, making each new name durable
    /// (directory fsync of its parent): a WAL inside a directory whose own
    /// entry is lost at a power cut would be lost with it.
    func makeDirectories(_ path: String) throws {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            let parent = current.isEmpty ? "/" : current
            current += "/" + component
            if system.isDirectory(current) { continue }
            try system.makeDirectory(current)
            try system.syncDirectory(parent)
        }
    }

    func makeDirectory(_ path: String) throws {
        if system.isDirectory(path) { return }
        try system.makeDirectory(path)
        try system.syncDirectory(Self.directoryName(path))
    }

    func syncDirectory(_ path: String) throws { try system.syncDirectory(path) }

    func removeTree(_ path: String) {
        if system.isDirectory(path) {
            for name in system.list(path) { removeTree(path + "/" + name) }
            system.removeDirectory(path)
        } else {
            system.unlink(path)
        }
    }

    func rename(_ from: String, _ to: String) throws { try system.rename(from, to) }

    /// Writes a whole file durably and atomically: temporary name, fsync, rename,
    /// directory fsync. A crash leaves either the old file or the new one.
    func writeAtomically(_ path: String, _ bytes: [UInt8]) throws {
        let temporary = path + ".tmp"
        let file = try system.open(temporary, .create)
        do {
            try bytes.withUnsafeBytes { (raw) throws in try system.write(file, raw, at: 0) }
            try system.sync(file)
        } catch {
            system.close(file)
            system.unlink(temporary)
            throw error
        }
        system.close(file)
        try system.rename(temporary, path)
        try system.syncDirectory(Self.directoryName(path))
    }

    func readAll(_ path: String) throws -> [UInt8] {
        let file = try system.open(path, .read)
        defer { system.close(file) }
        let size = try system.sizeBytes(file)
        var bytes = [UInt8](repeating: 0, count: size)
        let count = try bytes.withUnsafeMutableBytes { (raw) throws in try system.read(file, into: raw, at: 0) }
        return count == size ? bytes : Array(bytes.prefix(count))
    }

    /// CRC32C of a whole file, read sequentially (which also warms the page cache
    /// for the mapping that follows).
    func checksum(_ path: String) throws -> (size: Int, crc: UInt32) {
        let file = try system.open(path, .read)
        defer { system.close(file) }
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 64)
        defer { buffer.deallocate() }
        var crc: UInt32 = 0
        var total = 0
        while true {
            let count = try system.read(file, into: buffer, at: total)
            if count == 0 { break }
            crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: buffer[0..<count]), continuing: crc)
            total += count
            if count < chunk { break }
        }
        return (total, crc)
    }

    /// Bytes used by regular files under `path` (recursively).
    func treeSize(_ path: String) -> Int {
        if system.isDirectory(path) { return system.list(path).reduce(0) { $0 + treeSize(path + "/" + $1) } }
        return system.sizeBytes(path) ?? 0
    }

    /// Hard link when possible (same file system), else a durable copy.
    func linkOrCopy(_ source: String, _ target: String) throws {
        if system.link(source, target) { return }
        try copyPrefix(source, target, bytes: system.sizeBytes(source) ?? 0)
    }

    /// Copies the first `bytes` bytes of `source` to a new file `target`, fsynced.
    func copyPrefix(_ source: String, _ target: String, bytes: Int) throws {
        let input = try system.open(source, .read)
        defer { system.close(input) }
        var writer = try ChecksummedWriter(files: self, path: target)
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 64)
        defer { buffer.deallocate() }
        var copied = 0
        do {
            while copied < bytes {
                let wanted = min(chunk, bytes - copied)
                let count = try system.read(input, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<wanted]), at: copied)
                if count == 0 { throw StorageError.io("\(source): shorter than \(bytes) bytes") }
                try writer.write(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
                copied += count
            }
            try writer.syncAndClose()
        } catch {
            writer.close()
            throw error
        }
    }

    /// Writes a new file of `sizeBytes`: the first `copied` bytes of `source`
    /// copied in the kernel (copy_file_range), then `patches` (byte ranges)
    /// written from memory at `base`, the rest zero. Returns a writer holding
    /// the file, its size and CRC32C (read back from the page cache), not yet synced.
    func compose(_ target: String, copying copied: Int, of source: String, patches: [Range<Int>],
                 from base: UnsafeRawPointer, sizeBytes: Int) throws -> ChecksummedWriter {
        precondition(copied <= sizeBytes, "the copied prefix fits the new file")
        let input = try system.open(source, .read)
        defer { system.close(input) }
        var writer = try ChecksummedWriter(files: self, path: target)
        do {
            try system.copy(copied, from: input, to: writer.file)
            for patch in patches where patch.lowerBound < sizeBytes {
                let end = min(patch.upperBound, sizeBytes)
                try system.write(writer.file, UnsafeRawBufferPointer(start: base + patch.lowerBound, count: end - patch.lowerBound),
                                 at: patch.lowerBound)
            }
            try system.truncate(writer.file, sizeBytes: sizeBytes)
            let digest = try checksum(target)
            precondition(digest.size == sizeBytes, "a composed file has the size it was cut to")
            writer.adopt(sizeBytes: digest.size, crc: digest.crc)
            return writer
        } catch {
            writer.close()
            throw error
        }
    }

    static func directoryName(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}

/// Writes a file in chunks while computing its checksum; fsync is separate so a
/// checkpoint can write everything first and sync afterwards.
struct ChecksummedWriter {
    let path: String
    let file: FileDescriptor
    private let system: any FileSystem
    private(set) var size = 0
    private(set) var crc: UInt32 = 0

    init(files: Files, path: String) throws {
        self.path = path
        system = files.system
        file = try system.open(path, .create)
    }

    mutating func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count > 0 else { return }
        try system.write(file, bytes, at: size)
        crc = CRC32C.checksum(bytes, continuing: crc)
        size += bytes.count
    }

    /// For a file written by other means (`Files.compose`): its size and checksum.
    mutating func adopt(sizeBytes: Int, crc: UInt32) {
        size = sizeBytes
        self.crc = crc
    }

    func syncAndClose() throws {
        defer { system.close(file) }
        try system.sync(file)
    }

    func close() { system.close(file) }
}

/// Regions whose first bytes come from a file mapped copy-on-write: the
/// reservation is anonymous (zero pages, address space only) and the file is
/// mapped over its start. Writes go to private pages, so the file stays
/// exactly what the checkpoint wrote; the next checkpoint writes a new one.
enum MappedRegions {
    static func make(files: Files, reservedBytes: Int, file: String?, fileBytes: Int) throws -> MemoryRegion {
        let region: MemoryRegion
        do { region = try MemoryRegion.anonymous(reservedBytes: max(reservedBytes, fileBytes)) } catch {
            throw StorageError.resourceExhausted("\(error)")
        }
        guard let file, fileBytes > 0 else { return region }
        try files.system.mapPrivate(file, at: region.base, sizeBytes: fileBytes)
        return region
    }
}
