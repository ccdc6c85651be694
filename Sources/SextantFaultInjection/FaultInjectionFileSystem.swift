import SextantStorage
import SextantSupport
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A file system in memory that remembers what a power cut would keep, in the
/// manner of RocksDB's FaultInjectionTestFS and Pebble's strict MemFS: each
/// file's contents and size as of its last `sync`/`syncData`, each directory's
/// names as of its last `syncDirectory`. Everything else is volatile.
///
/// It counts the operations that change state; with `cutAfterOperations` set,
/// the operation after that many fails, and so does every one after it (the
/// power is off). `survivingImage` then builds what a restart would find, as a
/// new file system, so that nothing the dead process still runs can touch it.
package final class FaultInjectionFileSystem: FileSystem, @unchecked Sendable {
    /// What happens to data written but not synced when the power goes.
    package enum CutVariant: String, Sendable, CaseIterable {
        /// Every unsynced write is lost.
        case dropUnsynced = "drop"
        /// Each file keeps a random prefix of its unsynced writes, in order.
        case keepRandomPrefix = "prefix"
        /// Every unsynced write reached the disk except the last, which stops
        /// at a random 512-byte sector of its last page.
        case tearLastPage = "tear"
    }

    /// One change to a file's contents since its last sync, kept in order so
    /// that a cut can replay any prefix of them.
    private enum Change {
        case write(offset: Int, bytes: [UInt8])
        case truncate(sizeBytes: Int)
    }

    /// Reached only under the file system's lock.
    private final class Inode: @unchecked Sendable {
        var data: [UInt8]
        var durable: [UInt8]
        var unsynced: [Change] = []
        init(data: [UInt8]) {
            self.data = data
            durable = data
        }
    }

    private enum Node: Equatable {
        case file(Int)
        case directory(Int)
    }

    private struct Directory {
        var entries: [String: Node] = [:]
        var durable: [String: Node] = [:]
    }

    private struct Open {
        let inode: Int
        let writable: Bool
        let path: String
    }

    private struct State {
        var inodes: [Int: Inode] = [:]
        var directories: [Int: Directory] = [0: Directory()]
        var nextID = 1
        var open: [Int32: Open] = [:]
        var nextDescriptor: Int32 = 3
        var operations = 0
        var cutAfterOperations: Int?
        var poweredOff = false
        var syncsLie = false
        /// The last operations, newest last ("N action path"), for a failure's report.
        var recent: [String] = []
    }

    private let state: Mutex<State>

    package var kernelDescriptors: Bool { false }

    /// An empty file system whose power goes after `cutAfterOperations` state
    /// changes (never when nil). With `syncsLie`, fsync returns success and
    /// makes nothing durable, like a disk cache that ignores flushes: the
    /// trials must then find lost writes, which shows that they can fail.
    package init(cutAfterOperations: Int? = nil, syncsLie: Bool = false) {
        var initial = State()
        initial.cutAfterOperations = cutAfterOperations
        initial.syncsLie = syncsLie
        state = Mutex(initial)
    }

    private init(state: State) { self.state = Mutex(state) }

    /// State-changing operations so far (the numbering crash points use).
    package var operations: Int { state.withLock { $0.operations } }
    package var isPoweredOff: Bool { state.withLock { $0.poweredOff } }

    /// Cuts the power now: every later operation fails.
    package func cutPower() { state.withLock { $0.poweredOff = true } }

    // MARK: - The image a restart finds

    /// What the disk holds after the power went: directories as of their last
    /// sync, files as of theirs plus what `variant` lets through. The new file
    /// system has everything durable and no cut scheduled.
    package func survivingImage(_ variant: CutVariant, seed: UInt64) -> FaultInjectionFileSystem {
        var random = SplitMix64(seed: seed)
        return state.withLock { old in
            old.poweredOff = true
            var image = State()
            image.nextID = old.nextID
            var copied: [Int: Int] = [:]  // old inode → new inode, so hard links stay links
            func visit(_ directoryID: Int) {
                guard let directory = old.directories[directoryID] else { return }
                var kept = Directory()
                for (name, node) in directory.durable {
                    switch node {
                    case .directory(let child):
                        visit(child)
                        kept.entries[name] = .directory(child)
                    case .file(let inodeID):
                        if let existing = copied[inodeID] {
                            kept.entries[name] = .file(existing)
                            continue
                        }
                        guard let inode = old.inodes[inodeID] else { continue }
                        let data = Self.afterCut(inode, variant, &random)
                        image.inodes[inodeID] = Inode(data: data)
                        copied[inodeID] = inodeID
                        kept.entries[name] = .file(inodeID)
                    }
                }
                kept.durable = kept.entries
                image.directories[directoryID] = kept
            }
            visit(0)
            return FaultInjectionFileSystem(state: image)
        }
    }

    private static func afterCut(_ inode: Inode, _ variant: CutVariant, _ random: inout SplitMix64) -> [UInt8] {
        var data = inode.durable
        let changes = inode.unsynced
        guard !changes.isEmpty else { return data }
        let kept: Int
        switch variant {
        case .dropUnsynced: kept = 0
        case .keepRandomPrefix: kept = Int(random.next() % UInt64(changes.count + 1))
        case .tearLastPage: kept = changes.count - 1
        }
        for change in changes.prefix(kept) { apply(change, to: &data) }
        if variant == .tearLastPage, case .write(let offset, let bytes)? = changes.last {
            // The last write lands up to a sector boundary inside its last page.
            let end = offset + bytes.count
            let lastPage = max(offset, (end - 1) / 4096 * 4096)
            let sectors = (end - lastPage + 511) / 512
            let landed = min(end, lastPage + 512 * Int(random.next() % UInt64(sectors)))
            apply(.write(offset: offset, bytes: Array(bytes[0..<(landed - offset)])), to: &data)
        } else if variant == .tearLastPage, let last = changes.last {
            apply(last, to: &data)
        }
        return data
    }

    private static func apply(_ change: Change, to data: inout [UInt8]) {
        switch change {
        case .write(let offset, let bytes):
            if data.count < offset + bytes.count { data += [UInt8](repeating: 0, count: offset + bytes.count - data.count) }
            data.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
        case .truncate(let sizeBytes):
            if sizeBytes < data.count {
                data.removeSubrange(sizeBytes...)
            } else {
                data += [UInt8](repeating: 0, count: sizeBytes - data.count)
            }
        }
    }

    // MARK: - Paths

    private static func components(_ path: String) -> [String] {
        path.split(separator: "/").map(String.init).filter { $0 != "." }
    }

    private static func resolve(_ path: String, in state: State) -> Node? {
        var node = Node.directory(0)
        for component in components(path) {
            guard case .directory(let id) = node, let next = state.directories[id]?.entries[component] else { return nil }
            node = next
        }
        return node
    }

    /// The directory holding `path`'s last component, and that component.
    private static func parent(_ path: String, in state: State) -> (directory: Int, name: String)? {
        var parts = components(path)
        guard let name = parts.popLast() else { return nil }
        guard case .directory(let id)? = resolve(parts.joined(separator: "/"), in: state) else { return nil }
        return (id, name)
    }

    private static func failure(_ path: String, _ action: String, _ code: Int32) -> StorageError {
        .io("\(action) \(path): \(String(cString: strerror(code))) (errno \(code)) [simulated]")
    }

    /// Counts one state-changing operation; throws once the power is off.
    private static func mutate(_ state: inout State, _ path: String, _ action: String) throws {
        if let limit = state.cutAfterOperations, state.operations >= limit { state.poweredOff = true }
        guard !state.poweredOff else { throw failure(path, action, EIO) }
        state.operations += 1
        if state.recent.count == 4096 { state.recent.removeFirst(2048) }
        state.recent.append("\(state.operations) \(action) \(path)")
    }

    /// The last operations before now (or before the cut), oldest first.
    package var recentOperations: [String] { state.withLock { $0.recent } }

    // MARK: - FileSystem

    package func open(_ path: String, _ mode: OpenMode) throws -> FileDescriptor {
        try state.withLock { state in
            if mode == .create { try Self.mutate(&state, path, "create") }
            guard !state.poweredOff else { throw Self.failure(path, "open", EIO) }
            let inodeID: Int
            switch Self.resolve(path, in: state) {
            case .file(let id)?:
                inodeID = id
                if mode == .create, let inode = state.inodes[id], !inode.data.isEmpty {
                    inode.data = []
                    inode.unsynced.append(.truncate(sizeBytes: 0))
                }
            case .directory?:
                throw Self.failure(path, "open", EISDIR)
            case nil:
                guard mode == .create else { throw Self.failure(path, "open", ENOENT) }
                guard let (directory, name) = Self.parent(path, in: state) else { throw Self.failure(path, "create", ENOENT) }
                inodeID = state.nextID
                state.nextID += 1
                state.inodes[inodeID] = Inode(data: [])
                state.directories[directory]?.entries[name] = .file(inodeID)
            }
            let descriptor = state.nextDescriptor
            state.nextDescriptor += 1
            state.open[descriptor] = Open(inode: inodeID, writable: mode != .read, path: path)
            return FileDescriptor(raw: descriptor)
        }
    }

    package func close(_ file: FileDescriptor) {
        state.withLock { _ = $0.open.removeValue(forKey: file.raw) }
    }

    private func inode(_ file: FileDescriptor, _ state: State, writing: Bool) throws -> Inode {
        guard let open = state.open[file.raw], let inode = state.inodes[open.inode] else {
            throw Self.failure("descriptor \(file.raw)", "use", EBADF)
        }
        guard !writing || open.writable else { throw Self.failure("descriptor \(file.raw)", "write", EBADF) }
        return inode
    }

    package func read(_ file: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws -> Int {
        try state.withLock { state in
            guard !state.poweredOff else { throw Self.failure("descriptor \(file.raw)", "read", EIO) }
            let inode = try inode(file, state, writing: false)
            guard offset < inode.data.count else { return 0 }
            let count = min(buffer.count, inode.data.count - offset)
            inode.data.withUnsafeBytes { source in
                buffer.baseAddress?.copyMemory(from: source.baseAddress! + offset, byteCount: count)
            }
            return count
        }
    }

    package func write(_ file: FileDescriptor, _ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        try state.withLock { state in
            try Self.mutate(&state, state.open[file.raw]?.path ?? "descriptor \(file.raw)", "write")
            let inode = try inode(file, state, writing: true)
            let change = Change.write(offset: offset, bytes: Array(bytes))
            Self.apply(change, to: &inode.data)
            inode.unsynced.append(change)
        }
    }

    package func truncate(_ file: FileDescriptor, sizeBytes: Int) throws {
        try state.withLock { state in
            try Self.mutate(&state, state.open[file.raw]?.path ?? "descriptor \(file.raw)", "truncate")
            let inode = try inode(file, state, writing: true)
            let change = Change.truncate(sizeBytes: sizeBytes)
            Self.apply(change, to: &inode.data)
            inode.unsynced.append(change)
        }
    }

    package func sizeBytes(_ file: FileDescriptor) throws -> Int {
        try state.withLock { state in try inode(file, state, writing: false).data.count }
    }

    package func sync(_ file: FileDescriptor) throws {
        try state.withLock { state in
            try Self.mutate(&state, state.open[file.raw]?.path ?? "descriptor \(file.raw)", "fsync")
            let inode = try inode(file, state, writing: false)
            if state.syncsLie { return }
            inode.durable = inode.data
            inode.unsynced = []
        }
    }

    package func syncData(_ file: FileDescriptor) throws { try sync(file) }

    package func copy(_ bytes: Int, from source: FileDescriptor, to target: FileDescriptor) throws {
        try state.withLock { state in
            try Self.mutate(&state, "descriptor \(target.raw)", "copy_file_range")
            let from = try inode(source, state, writing: false)
            let to = try inode(target, state, writing: true)
            guard from.data.count >= bytes else { throw Self.failure("descriptor \(source.raw)", "copy_file_range", EIO) }
            let change = Change.write(offset: 0, bytes: Array(from.data[0..<bytes]))
            Self.apply(change, to: &to.data)
            to.unsynced.append(change)
        }
    }

    package func mapPrivate(_ path: String, at base: UnsafeMutableRawPointer, sizeBytes: Int) throws {
        try state.withLock { state in
            guard !state.poweredOff else { throw Self.failure(path, "mmap", EIO) }
            guard case .file(let id)? = Self.resolve(path, in: state), let inode = state.inodes[id] else {
                throw Self.failure(path, "mmap", ENOENT)
            }
            // A private mapping reads the file as it is now; later writes to it stay in memory.
            let count = min(sizeBytes, inode.data.count)
            inode.data.withUnsafeBytes { base.copyMemory(from: $0.baseAddress!, byteCount: count) }
        }
    }

    package func exists(_ path: String) -> Bool { state.withLock { Self.resolve(path, in: $0) != nil } }

    package func isDirectory(_ path: String) -> Bool {
        state.withLock { if case .directory? = Self.resolve(path, in: $0) { return true } else { return false } }
    }

    package func sizeBytes(_ path: String) -> Int? {
        state.withLock { state in
            guard case .file(let id)? = Self.resolve(path, in: state) else { return nil }
            return state.inodes[id]?.data.count
        }
    }

    package func list(_ directory: String) -> [String] {
        state.withLock { state in
            guard case .directory(let id)? = Self.resolve(directory, in: state) else { return [] }
            return (state.directories[id]?.entries.keys).map { $0.sorted() } ?? []
        }
    }

    package func makeDirectory(_ path: String) throws {
        try state.withLock { state in
            if case .directory? = Self.resolve(path, in: state) { return }
            try Self.mutate(&state, path, "mkdir")
            guard let (parent, name) = Self.parent(path, in: state) else { throw Self.failure(path, "mkdir", ENOENT) }
            guard state.directories[parent]?.entries[name] == nil else { throw Self.failure(path, "mkdir", EEXIST) }
            let id = state.nextID
            state.nextID += 1
            state.directories[id] = Directory()
            state.directories[parent]?.entries[name] = .directory(id)
        }
    }

    package func removeDirectory(_ path: String) {
        state.withLock { state in
            guard (try? Self.mutate(&state, path, "rmdir")) != nil,
                  let (parent, name) = Self.parent(path, in: state),
                  case .directory(let id)? = state.directories[parent]?.entries[name],
                  state.directories[id]?.entries.isEmpty == true
            else { return }
            state.directories[parent]?.entries[name] = nil
        }
    }

    package func unlink(_ path: String) {
        state.withLock { state in
            guard (try? Self.mutate(&state, path, "unlink")) != nil,
                  let (parent, name) = Self.parent(path, in: state),
                  case .file? = state.directories[parent]?.entries[name]
            else { return }
            state.directories[parent]?.entries[name] = nil
        }
    }

    package func rename(_ from: String, _ to: String) throws {
        try state.withLock { state in
            try Self.mutate(&state, from, "rename")
            guard let (source, sourceName) = Self.parent(from, in: state),
                  let node = state.directories[source]?.entries[sourceName]
            else { throw Self.failure(from, "rename", ENOENT) }
            guard let (target, targetName) = Self.parent(to, in: state) else { throw Self.failure(to, "rename", ENOENT) }
            if case .directory(let existing)? = state.directories[target]?.entries[targetName],
               state.directories[existing]?.entries.isEmpty == false {
                throw Self.failure(to, "rename", ENOTEMPTY)
            }
            state.directories[source]?.entries[sourceName] = nil
            state.directories[target]?.entries[targetName] = node
        }
    }

    package func link(_ source: String, _ target: String) -> Bool {
        state.withLock { state in
            guard (try? Self.mutate(&state, target, "link")) != nil,
                  case .file(let id)? = Self.resolve(source, in: state),
                  let (directory, name) = Self.parent(target, in: state),
                  state.directories[directory]?.entries[name] == nil
            else { return false }
            state.directories[directory]?.entries[name] = .file(id)
            return true
        }
    }

    package func syncDirectory(_ path: String) throws {
        try state.withLock { state in
            try Self.mutate(&state, path, "fsync directory")
            guard case .directory(let id)? = Self.resolve(path, in: state) else { throw Self.failure(path, "open directory", ENOENT) }
            let entries = state.directories[id]?.entries ?? [:]
            state.directories[id]?.durable = entries
        }
    }
}
