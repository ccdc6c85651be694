import CSextantIO
import SextantIndex

#if canImport(Glibc)
import Glibc
#endif

/// An open file, as a `FileSystem` hands it out: a kernel descriptor for the
/// real file system, a table index for a simulated one.
package struct FileDescriptor: Sendable, Hashable {
    package let raw: Int32
    package init(raw: Int32) { self.raw = raw }
}

/// How a file is opened.
package enum OpenMode: Sendable {
    /// Read only; the file must exist.
    case read
    /// Write only; the file must exist and keeps its contents.
    case write
    /// Write only; created, or emptied when it exists.
    case create
}

/// Every file operation the storage layer makes, and nothing else: the one
/// seam through which a test replaces the disk (the fault-injecting file
/// system of the power-loss trials) and through which the durability rules
/// are stated. An operation that changes state is durable only after the
/// matching sync: file contents and size after `sync`/`syncData` of that
/// file, names (create, rename, unlink, mkdir) after `syncDirectory` of the
/// directory holding them. Errors name the path and the errno.
package protocol FileSystem: AnyObject, Sendable {
    func open(_ path: String, _ mode: OpenMode) throws -> FileDescriptor
    func close(_ file: FileDescriptor)
    /// Reads up to `buffer.count` bytes at `offset`; fewer only at the end of the file.
    func read(_ file: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws -> Int
    /// Writes all of `bytes` at `offset`, extending the file as needed.
    func write(_ file: FileDescriptor, _ bytes: UnsafeRawBufferPointer, at offset: Int) throws
    func truncate(_ file: FileDescriptor, sizeBytes: Int) throws
    func sizeBytes(_ file: FileDescriptor) throws -> Int
    /// fsync: contents, size and the file's other metadata reach the disk.
    func sync(_ file: FileDescriptor) throws
    /// fdatasync: contents and size reach the disk.
    func syncData(_ file: FileDescriptor) throws
    /// Copies the first `bytes` bytes of `source` to the start of `target`
    /// (copy_file_range on the real file system: page cache to page cache).
    func copy(_ bytes: Int, from source: FileDescriptor, to target: FileDescriptor) throws
    /// Maps the first `sizeBytes` of a file copy-on-write over `base` (page
    /// aligned, already reserved): reads see the file, writes stay private.
    func mapPrivate(_ path: String, at base: UnsafeMutableRawPointer, sizeBytes: Int) throws

    func exists(_ path: String) -> Bool
    func isDirectory(_ path: String) -> Bool
    /// Sizes of a file by name; nil when it does not exist.
    func sizeBytes(_ path: String) -> Int?
    /// Names in a directory, sorted; empty when it does not exist.
    func list(_ directory: String) -> [String]
    /// Creates one directory; an existing one is fine.
    func makeDirectory(_ path: String) throws
    func removeDirectory(_ path: String)
    func unlink(_ path: String)
    func rename(_ from: String, _ to: String) throws
    /// A hard link; false when the file system cannot make one (then callers copy).
    func link(_ source: String, _ target: String) -> Bool
    /// fsync of a directory: the names in it reach the disk.
    func syncDirectory(_ path: String) throws

    /// True when descriptors are the kernel's, so that the WAL may hand its
    /// write+fdatasync pairs to io_uring instead of calling `write` and `syncData`.
    var kernelDescriptors: Bool { get }
}

/// The real file system: POSIX calls, nothing added.
package final class POSIXFileSystem: FileSystem {
    package static let shared = POSIXFileSystem()
    package var kernelDescriptors: Bool { true }

    private static func failure(_ path: String, _ action: String) -> StorageError {
        let code = errno
        return .io("\(action) \(path): \(String(cString: strerror(code))) (errno \(code))")
    }

    private static func failure(_ file: FileDescriptor, _ action: String) -> StorageError {
        failure("descriptor \(file.raw)", action)
    }

    package func open(_ path: String, _ mode: OpenMode) throws -> FileDescriptor {
        let flags: Int32
        switch mode {
        case .read: flags = O_RDONLY | O_CLOEXEC
        case .write: flags = O_WRONLY | O_CLOEXEC
        case .create: flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC
        }
        let fd = Glibc.open(path, flags, 0o644)
        guard fd >= 0 else { throw Self.failure(path, mode == .create ? "create" : "open") }
        return FileDescriptor(raw: fd)
    }

    package func close(_ file: FileDescriptor) { _ = Glibc.close(file.raw) }

    package func read(_ file: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws -> Int {
        guard let base = buffer.baseAddress else { return 0 }
        var done = 0
        while done < buffer.count {
            let count = pread(file.raw, base + done, buffer.count - done, off_t(offset + done))
            if count < 0 {
                if errno == EINTR { continue }
                throw Self.failure(file, "read")
            }
            if count == 0 { break }
            done += count
        }
        return done
    }

    package func write(_ file: FileDescriptor, _ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        guard let base = bytes.baseAddress else { return }
        var done = 0
        while done < bytes.count {
            let written = pwrite(file.raw, base + done, bytes.count - done, off_t(offset + done))
            if written < 0 {
                if errno == EINTR { continue }
                throw Self.failure(file, "write")
            }
            done += written
        }
    }

    package func truncate(_ file: FileDescriptor, sizeBytes: Int) throws {
        guard ftruncate(file.raw, off_t(sizeBytes)) == 0 else { throw Self.failure(file, "truncate") }
    }

    package func sizeBytes(_ file: FileDescriptor) throws -> Int {
        var info = stat()
        guard fstat(file.raw, &info) == 0 else { throw Self.failure(file, "stat") }
        return Int(info.st_size)
    }

    package func sync(_ file: FileDescriptor) throws {
        guard fsync(file.raw) == 0 else { throw Self.failure(file, "fsync") }
    }

    package func syncData(_ file: FileDescriptor) throws {
        guard fdatasync(file.raw) == 0 else { throw Self.failure(file, "fdatasync") }
    }

    package func copy(_ bytes: Int, from source: FileDescriptor, to target: FileDescriptor) throws {
        var inputOffset: Int64 = 0
        var outputOffset: Int64 = 0
        while inputOffset < Int64(bytes) {
            let moved = sx_copy_file_range(source.raw, &inputOffset, target.raw, &outputOffset, bytes - Int(inputOffset))
            if moved < 0 {
                if moved == -Int64(EINTR) { continue }
                throw StorageError.io("copy_file_range from descriptor \(source.raw): \(String(cString: strerror(Int32(-moved))))")
            }
            if moved == 0 { throw StorageError.io("descriptor \(source.raw): shorter than \(bytes) bytes") }
        }
    }

    package func mapPrivate(_ path: String, at base: UnsafeMutableRawPointer, sizeBytes: Int) throws {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Self.failure(path, "open") }
        defer { Glibc.close(fd) }
        let mapped = mmap(base, MemoryRegion.pageRounded(sizeBytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0)
        guard mapped == base else { throw Self.failure(path, "mmap") }
    }

    package func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    package func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    package func sizeBytes(_ path: String) -> Int? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Int(info.st_size)
    }

    package func list(_ directory: String) -> [String] {
        guard let handle = opendir(directory) else { return [] }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                raw.bindMemory(to: CChar.self).baseAddress.map { String(cString: $0) } ?? ""
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    package func makeDirectory(_ path: String) throws {
        if mkdir(path, 0o755) != 0 && errno != EEXIST { throw Self.failure(path, "mkdir") }
    }

    package func removeDirectory(_ path: String) { _ = rmdir(path) }
    package func unlink(_ path: String) { _ = Glibc.unlink(path) }

    package func rename(_ from: String, _ to: String) throws {
        guard Glibc.rename(from, to) == 0 else { throw Self.failure(from, "rename to \(to)") }
    }

    package func link(_ source: String, _ target: String) -> Bool { Glibc.link(source, target) == 0 }

    package func syncDirectory(_ path: String) throws {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw Self.failure(path, "open directory") }
        defer { Glibc.close(fd) }
        guard fsync(fd) == 0 else { throw Self.failure(path, "fsync directory") }
    }
}
