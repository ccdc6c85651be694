import CSextantIO
import SextantIndex
import SextantKernels

#if canImport(Glibc)
import Glibc
#endif

/// Thin POSIX helpers. Every failure names the path and errno.
enum Files {
    static func errorText(_ path: String, _ action: String) -> String {
        "\(action) \(path): \(String(cString: strerror(errno))) (errno \(errno))"
    }

    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    static func makeDirectory(_ path: String) throws {
        if mkdir(path, 0o755) != 0 && errno != EEXIST { throw StorageError.io(errorText(path, "mkdir")) }
    }

    static func makeDirectories(_ path: String) throws {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/" + component
            try makeDirectory(current)
        }
    }

    /// fsync on a directory makes the names in it (creations, renames, unlinks) durable.
    static func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { throw StorageError.io(errorText(path, "open directory")) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw StorageError.io(errorText(path, "fsync directory")) }
    }

    static func list(_ path: String) -> [String] {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                raw.bindMemory(to: CChar.self).baseAddress.map { String(cString: $0) } ?? ""
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    static func size(_ path: String) -> Int? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Int(info.st_size)
    }

    static func removeTree(_ path: String) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            for name in list(path) { removeTree(path + "/" + name) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }

    static func rename(_ from: String, _ to: String) throws {
        guard Glibc.rename(from, to) == 0 else { throw StorageError.io(errorText(from, "rename to \(to)")) }
    }

    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
        guard let base = bytes.baseAddress else { return }
        var offset = 0
        while offset < bytes.count {
            let written = write(fd, base + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw StorageError.io(errorText(path, "write"))
            }
            offset += written
        }
    }

    /// Writes a whole file durably and atomically: temporary name, fsync, rename,
    /// directory fsync. A crash leaves either the old file or the new one.
    static func writeAtomically(_ path: String, _ bytes: [UInt8]) throws {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StorageError.io(errorText(temporary, "create")) }
        do throws {
            try bytes.withUnsafeBytes { (raw) throws in try writeAll(fd, raw, path: temporary) }
            guard fsync(fd) == 0 else { throw StorageError.io(errorText(temporary, "fsync")) }
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        close(fd)
        try rename(temporary, path)
        try syncDirectory(directoryName(path))
    }

    static func readAll(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw StorageError.io(errorText(path, "open")) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw StorageError.io(errorText(path, "stat")) }
        let size = Int(info.st_size)
        var bytes = [UInt8](repeating: 0, count: size)
        var offset = 0
        try bytes.withUnsafeMutableBytes { (raw) throws in
            guard let base = raw.baseAddress else { return }
            while offset < size {
                let count = read(fd, base + offset, size - offset)
                if count < 0 {
                    if errno == EINTR { continue }
                    throw StorageError.io(errorText(path, "read"))
                }
                if count == 0 { break }
                offset += count
            }
        }
        return offset == size ? bytes : Array(bytes.prefix(offset))
    }

    /// CRC32C of a whole file, read sequentially (which also warms the page cache
    /// for the mapping that follows).
    static func checksum(_ path: String) throws -> (size: Int, crc: UInt32) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw StorageError.io(errorText(path, "open")) }
        defer { close(fd) }
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 64)
        defer { buffer.deallocate() }
        var crc: UInt32 = 0
        var total = 0
        while true {
            let count = read(fd, buffer, chunk)
            if count < 0 {
                if errno == EINTR { continue }
                throw StorageError.io(errorText(path, "read"))
            }
            if count == 0 { break }
            crc = CRC32C.checksum(UnsafeRawBufferPointer(start: buffer, count: count), continuing: crc)
            total += count
        }
        return (total, crc)
    }

    /// Bytes used by regular files under `path` (recursively).
    static func treeSize(_ path: String) -> Int {
        var info = stat()
        guard lstat(path, &info) == 0 else { return 0 }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            return list(path).reduce(0) { $0 + treeSize(path + "/" + $1) }
        }
        return Int(info.st_size)
    }

    /// Hard link when possible (same file system), else a durable copy.
    static func linkOrCopy(_ source: String, _ target: String) throws {
        if link(source, target) == 0 { return }
        try copyPrefix(source, target, bytes: size(source) ?? 0)
    }

    /// Copies the first `bytes` bytes of `source` to a new file `target`, fsynced.
    static func copyPrefix(_ source: String, _ target: String, bytes: Int) throws {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw StorageError.io(errorText(source, "open")) }
        defer { close(input) }
        var writer = try ChecksummedWriter(path: target)
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 64)
        defer { buffer.deallocate() }
        var copied = 0
        do throws {
            while copied < bytes {
                let count = pread(input, buffer, min(chunk, bytes - copied), off_t(copied))
                if count < 0 {
                    if errno == EINTR { continue }
                    throw StorageError.io(errorText(source, "read"))
                }
                if count == 0 { throw StorageError.io("\(source): shorter than \(bytes) bytes") }
                try writer.write(UnsafeRawBufferPointer(start: buffer, count: count))
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
    static func compose(_ target: String, copying copied: Int, of source: String, patches: [Range<Int>],
                        from base: UnsafeRawPointer, sizeBytes: Int) throws -> ChecksummedWriter {
        precondition(copied <= sizeBytes, "the copied prefix fits the new file")
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw StorageError.io(errorText(source, "open")) }
        defer { close(input) }
        var writer = try ChecksummedWriter(path: target)
        do {
            var inputOffset: Int64 = 0
            var outputOffset: Int64 = 0
            while inputOffset < Int64(copied) {
                let moved = sx_copy_file_range(input, &inputOffset, writer.fd, &outputOffset, copied - Int(inputOffset))
                if moved < 0 {
                    if moved == -Int64(EINTR) { continue }
                    throw StorageError.io("\(target): copy_file_range from \(source): \(String(cString: strerror(Int32(-moved))))")
                }
                if moved == 0 { throw StorageError.io("\(source): shorter than \(copied) bytes") }
            }
            for patch in patches where patch.lowerBound < sizeBytes {
                let end = min(patch.upperBound, sizeBytes)
                var offset = patch.lowerBound
                while offset < end {
                    let written = pwrite(writer.fd, base + offset, end - offset, off_t(offset))
                    if written < 0 {
                        if errno == EINTR { continue }
                        throw StorageError.io(errorText(target, "write"))
                    }
                    offset += written
                }
            }
            guard ftruncate(writer.fd, off_t(sizeBytes)) == 0 else { throw StorageError.io(errorText(target, "truncate")) }
            let digest = try checksum(target)
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
    let fd: Int32
    private(set) var size = 0
    private(set) var crc: UInt32 = 0

    init(path: String) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StorageError.io(Files.errorText(path, "create")) }
    }

    mutating func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count > 0 else { return }
        try Files.writeAll(fd, bytes, path: path)
        crc = CRC32C.checksum(bytes, continuing: crc)
        size += bytes.count
    }

    /// For a file written by other means (`Files.compose`): its size and checksum.
    mutating func adopt(sizeBytes: Int, crc: UInt32) {
        size = sizeBytes
        self.crc = crc
    }

    func syncAndClose() throws {
        defer { _ = Glibc.close(fd) }
        guard fsync(fd) == 0 else { throw StorageError.io(Files.errorText(path, "fsync")) }
    }

    func close() { _ = Glibc.close(fd) }
}

/// Regions whose first bytes come from a file mapped copy-on-write: the
/// reservation is anonymous (zero pages, address space only) and the file is
/// mapped over its start with MAP_FIXED. Writes go to private pages, so the file
/// stays exactly what the checkpoint wrote; the next checkpoint writes a new one.
enum MappedRegions {
    static func make(reservedBytes: Int, file: String?, fileBytes: Int) throws -> MemoryRegion {
        let region: MemoryRegion
        do { region = try MemoryRegion.anonymous(reservedBytes: max(reservedBytes, fileBytes)) } catch {
            throw StorageError.resourceExhausted("\(error)")
        }
        guard let file, fileBytes > 0 else { return region }
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw StorageError.io(Files.errorText(file, "open")) }
        defer { close(fd) }
        let mapped = mmap(region.base, MemoryRegion.pageRounded(fileBytes), PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_FIXED, fd, 0)
        guard mapped == region.base else { throw StorageError.io(Files.errorText(file, "mmap")) }
        return region
    }
}
