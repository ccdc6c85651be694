import SextantKernels
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Log sequence number: one per write batch, consecutive from 1.
public typealias LSN = UInt64

/// The WAL entry frame (little-endian), 24 bytes then the payload:
///
///     0  magic      u32  "SXW1"
///     4  length     u32  payload bytes
///     8  lsn        u64
///     16 crc32c     u32  over bytes 4..<16, 20..<24 and the payload
///     20 kind       u8
///     21 reserved   3 bytes, zero
///
/// An entry is one batch; it is valid only if the whole frame is present and
/// the checksum matches, so a batch is either entirely in the log or not at all.
package enum WALFrame {
    static let magic: UInt32 = 0x3157_5853  // "SXW1" little-endian
    static let headerBytes = 24

    package static func encode(lsn: LSN, kind: UInt8, payload: [UInt8]) -> [UInt8] {
        var frame = [UInt8](repeating: 0, count: headerBytes)
        frame.reserveCapacity(headerBytes + payload.count)
        frame.withUnsafeMutableBytes { header in
            header.storeBytes(of: magic.littleEndian, toByteOffset: 0, as: UInt32.self)
            header.storeBytes(of: UInt32(payload.count).littleEndian, toByteOffset: 4, as: UInt32.self)
            header.storeBytes(of: lsn.littleEndian, toByteOffset: 8, as: UInt64.self)
            header[20] = kind
        }
        frame.append(contentsOf: payload)
        let crc = checksum(frame)
        frame.withUnsafeMutableBytes { $0.storeBytes(of: crc.littleEndian, toByteOffset: 16, as: UInt32.self) }
        return frame
    }

    static func checksum(_ frame: UnsafeRawBufferPointer) -> UInt32 {
        var crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: frame[4..<16]))
        crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: frame[20..<frame.count]), continuing: crc)
        return crc
    }

    static func checksum(_ frame: [UInt8]) -> UInt32 { frame.withUnsafeBytes { checksum($0) } }

    package struct Entry {
        package let lsn: LSN
        package let kind: UInt8
        package let payloadRange: Range<Int>
        package let endOffset: Int
    }

    /// Parses entries from `bytes`; stops at the first frame that is short, has a
    /// bad magic or checksum, or breaks the LSN sequence (consecutive from the
    /// first entry's). Returns the good entries.
    package static func scan(_ bytes: UnsafeRawBufferPointer) -> [Entry] {
        var entries: [Entry] = []
        var offset = 0
        var expected: LSN? = nil
        while bytes.count - offset >= headerBytes {
            let magicValue = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            guard magicValue == magic else { break }
            let length = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)))
            guard length <= StorageLimits.maximumEntryBytes, bytes.count - offset - headerBytes >= length else { break }
            let lsn = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self))
            let stored = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 16, as: UInt32.self))
            let frame = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + headerBytes + length)])
            guard checksum(frame) == stored else { break }
            if let expected, lsn != expected { break }
            let end = offset + headerBytes + length
            entries.append(Entry(lsn: lsn, kind: bytes[offset + 20], payloadRange: (offset + headerBytes)..<end, endOffset: end))
            expected = lsn + 1
            offset = end
        }
        return entries
    }
}

/// A collection's write-ahead log: a folder of segment files named by the first
/// LSN they hold. Appends are grouped: every batch enqueued while earlier
/// groups are being written rides on the next write+fdatasync, so concurrent
/// writers share fsyncs. Groups may complete out of order on io_uring, but a
/// batch is acknowledged only when it and every batch before it are durable.
final class WriteAheadLog: @unchecked Sendable {
    struct Segment {
        let firstLSN: LSN
        let path: String
        let file: FileDescriptor
        var sizeBytes: Int
    }

    private struct Group {
        let firstLSN: LSN
        let lastLSN: LSN
        var done = false
        var status: Int32 = 0
    }

    private struct State {
        var segment: Segment
        /// Closed segments, oldest first, kept until a checkpoint covers them.
        var retired: [Segment] = []
        var nextLSN: LSN
        var durableLSN: LSN
        var pending: [UInt8] = []
        var pendingFirstLSN: LSN = 0
        var pendingLastLSN: LSN = 0
        var groups: [Group] = []
        var waiters: [(lsn: LSN, continuation: CheckedContinuation<Void, any Error>)] = []
        var failure: StorageError?
        var bytesSinceCheckpoint = 0
    }

    let directory: String
    private let io: DurableIO
    private let state: Mutex<State>
    /// Groups in flight at once; 1 for the synchronous backend (more would only queue).
    private let maximumInFlight: Int

    private init(directory: String, io: DurableIO, segment: Segment, retired: [Segment], nextLSN: LSN) {
        self.directory = directory
        self.io = io
        maximumInFlight = io.backend == .uring ? 4 : 1
        var initial = State(segment: segment, nextLSN: nextLSN, durableLSN: nextLSN - 1)
        initial.retired = retired
        initial.bytesSinceCheckpoint = retired.reduce(segment.sizeBytes) { $0 + $1.sizeBytes }
        state = Mutex(initial)
    }

    deinit {
        state.withLock { state in
            io.fileSystem.close(state.segment.file)
            for segment in state.retired { io.fileSystem.close(segment.file) }
        }
    }

    static func segmentName(_ firstLSN: LSN) -> String {
        let hex = String(firstLSN, radix: 16)
        return String(repeating: "0", count: max(0, 16 - hex.count)) + hex + ".wal"
    }

    /// What recovery found: the entries after `afterLSN`, in order, and what it dropped.
    struct Recovered {
        var entries: [(lsn: LSN, kind: UInt8, payload: [UInt8])] = []
        var droppedBytes = 0
        var droppedIn: String?
    }

    /// Opens (or creates) the log, returning every intact entry after `afterLSN`.
    /// A torn or corrupt tail is cut off at the last good entry, with one log line.
    static func open(directory: String, afterLSN: LSN, io: DurableIO) throws -> (WriteAheadLog, Recovered) {
        let disk = io.disk
        try disk.makeDirectories(directory)
        let names = disk.list(directory).filter { $0.hasSuffix(".wal") }
        var recovered = Recovered()
        var expected = afterLSN + 1
        var kept: [Segment] = []
        var cut = false
        for name in names {
            let path = directory + "/" + name
            guard let first = LSN(name.dropLast(4), radix: 16) else { continue }
            if cut {  // everything after a cut is unreachable by construction
                recovered.droppedBytes += disk.size(path) ?? 0
                disk.system.unlink(path)
                continue
            }
            let bytes = try disk.readAll(path)
            let entries = bytes.withUnsafeBytes { WALFrame.scan($0) }
            var goodEnd = 0
            for entry in entries {
                if entry.lsn < expected {  // already folded into the checkpoint
                    goodEnd = entry.endOffset
                    continue
                }
                guard entry.lsn == expected else { break }
                recovered.entries.append((entry.lsn, entry.kind, Array(bytes[entry.payloadRange])))
                expected += 1
                goodEnd = entry.endOffset
            }
            if goodEnd < bytes.count {
                recovered.droppedBytes += bytes.count - goodEnd
                recovered.droppedIn = path
                cut = true
            }
            let file = try disk.system.open(path, .write)
            if cut && goodEnd < bytes.count {
                // Made durable before anything is appended after it, so a second
                // cut cannot bring the torn bytes back between old and new entries.
                do {
                    try disk.system.truncate(file, sizeBytes: goodEnd)
                    try disk.system.sync(file)
                } catch {
                    disk.system.close(file)
                    throw error
                }
            }
            kept.append(Segment(firstLSN: first, path: path, file: file, sizeBytes: goodEnd))
        }
        if recovered.droppedBytes > 0 {
            StorageLog.write(
                "wal: dropped \(recovered.droppedBytes) bytes of torn or corrupt tail in \(recovered.droppedIn ?? directory); "
                    + "recovered through LSN \(expected - 1)")
        }
        let active: Segment
        if let last = kept.popLast() {
            active = last
        } else {
            active = try createSegment(disk, directory: directory, firstLSN: expected)
        }
        try disk.syncDirectory(directory)
        let log = WriteAheadLog(directory: directory, io: io, segment: active, retired: kept, nextLSN: expected)
        return (log, recovered)
    }

    private static func createSegment(_ disk: Files, directory: String, firstLSN: LSN) throws -> Segment {
        let path = directory + "/" + segmentName(firstLSN)
        return Segment(firstLSN: firstLSN, path: path, file: try disk.system.open(path, .create), sizeBytes: 0)
    }

    var disk: Files { io.disk }

    var lastLSN: LSN { state.withLock { $0.nextLSN - 1 } }
    var durableLSN: LSN { state.withLock { $0.durableLSN } }
    var bytesSinceCheckpoint: Int { state.withLock { $0.bytesSinceCheckpoint } }

    /// Appends one batch and returns its LSN. Call in the order batches are
    /// applied (the collection's writer lock); durability is awaited separately.
    func enqueue(kind: UInt8, payload: [UInt8]) throws -> LSN {
        let result: Result<LSN, StorageError> = state.withLock { state in
            if let failure = state.failure { return .failure(failure) }
            let lsn = state.nextLSN
            state.nextLSN += 1
            if state.pending.isEmpty { state.pendingFirstLSN = lsn }
            state.pending.append(contentsOf: WALFrame.encode(lsn: lsn, kind: kind, payload: payload))
            state.pendingLastLSN = lsn
            startGroupIfPossible(&state)
            return .success(lsn)
        }
        return try result.get()
    }

    /// Returns once `lsn` and everything before it are on disk.
    func waitDurable(_ lsn: LSN) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let immediate: Result<Void, StorageError>? = state.withLock { state in
                if let failure = state.failure { return .failure(failure) }
                if lsn <= state.durableLSN { return .success(()) }
                state.waiters.append((lsn, continuation))
                return nil
            }
            if let immediate { continuation.resume(with: immediate.mapError { $0 as any Error }) }
        }
    }

    /// A further group goes in flight beside a running one only once this many
    /// bytes wait. Measured (docs/BENCHMARKS.md): splitting small batches over
    /// several concurrent fdatasyncs made io_uring 20-40% slower than one
    /// accumulating group, because ext4 serialises the syncs of one file in its
    /// journal anyway; large groups are worth pipelining.
    static let pipelineThresholdBytes = 64 << 10

    private func startGroupIfPossible(_ state: inout State) {
        guard !state.pending.isEmpty, state.groups.count < maximumInFlight, state.failure == nil else { return }
        guard state.groups.isEmpty || state.pending.count >= Self.pipelineThresholdBytes else { return }
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: state.pending.count, alignment: 4096)
        state.pending.withUnsafeBytes { bytes.copyMemory(from: $0) }
        let offset = UInt64(state.segment.sizeBytes)
        state.segment.sizeBytes += state.pending.count
        state.bytesSinceCheckpoint += state.pending.count
        state.pending.removeAll(keepingCapacity: true)
        let lastLSN = state.pendingLastLSN
        let firstLSN = state.pendingFirstLSN
        // A group's entries are contiguous and follow the group before it (or what is durable).
        precondition(firstLSN <= lastLSN && firstLSN == (state.groups.last?.lastLSN ?? state.durableLSN) + 1,
                     "WAL group \(firstLSN)...\(lastLSN) does not follow \(state.groups.last?.lastLSN ?? state.durableLSN)")
        state.groups.append(Group(firstLSN: firstLSN, lastLSN: lastLSN))
        io.submit(DurableWrite(file: state.segment.file, bytes: bytes, offset: offset) { [self] status in
            complete(lastLSN: lastLSN, status: status)
        })
    }

    private func complete(lastLSN: LSN, status: Int32) {
        var ready: [(CheckedContinuation<Void, any Error>, Result<Void, StorageError>)] = []
        state.withLock { state in
            if let index = state.groups.firstIndex(where: { $0.lastLSN == lastLSN }) {
                state.groups[index].done = true
                state.groups[index].status = status
            }
            // Acknowledge in order: only a completed prefix of groups counts.
            while let first = state.groups.first, first.done {
                state.groups.removeFirst()
                if first.status != 0, state.failure == nil {
                    state.failure = .io("WAL write failed in \(state.segment.path): \(String(cString: strerror(-first.status)))")
                    StorageLog.write("wal: \(state.failure?.description ?? ""); the collection stops accepting writes")
                }
                if state.failure == nil {
                    precondition(first.lastLSN > state.durableLSN, "the durable LSN only grows")
                    state.durableLSN = first.lastLSN
                }
            }
            var remaining: [(lsn: LSN, continuation: CheckedContinuation<Void, any Error>)] = []
            for waiter in state.waiters {
                if let failure = state.failure {
                    ready.append((waiter.continuation, .failure(failure)))
                } else if waiter.lsn <= state.durableLSN {
                    ready.append((waiter.continuation, .success(())))
                } else {
                    remaining.append(waiter)
                }
            }
            state.waiters = remaining
            startGroupIfPossible(&state)
        }
        for (continuation, result) in ready { continuation.resume(with: result.mapError { $0 as any Error }) }
    }

    /// Starts a new segment for LSNs after `lastLSN`. Call with writers paused and
    /// everything durable; returns the segments a checkpoint at `lastLSN` covers.
    func rotate() throws -> [Segment] {
        let result: Result<[Segment], StorageError> = state.withLock { state in
            precondition(state.pending.isEmpty && state.groups.isEmpty, "rotate with writes in flight")
            if state.segment.sizeBytes == 0 && state.segment.firstLSN == state.nextLSN {
                // Nothing was logged since the last rotation (two checkpoints in a
                // row): the new segment would have the active one's name, and
                // creating it, then discarding the "covered" one, would unlink the
                // file every later write goes to. The empty segment stays active.
                let covered = state.retired
                state.retired = []
                state.bytesSinceCheckpoint = 0
                return .success(covered)
            }
            do {
                let fresh = try Self.createSegment(disk, directory: directory, firstLSN: state.nextLSN)
                try disk.syncDirectory(directory)
                let covered = state.retired + [state.segment]
                state.retired = []
                state.segment = fresh
                state.bytesSinceCheckpoint = 0
                return .success(covered)
            } catch { return .failure(error as? StorageError ?? .io("\(error)")) }
        }
        return try result.get()
    }

    /// Deletes segments a durable checkpoint has made redundant, except those
    /// still holding entries from `firstUnshipped` on (0: nothing is shipped),
    /// which go back to the retired list until a later checkpoint finds them
    /// shipped, within `StorageLimits.maximumUnshippedWALBytes`: past that
    /// bound the oldest go anyway and the shipper finds a gap (its followers
    /// then need a newer snapshot).
    func discard(_ segments: [Segment], keepingFrom firstUnshipped: LSN = 0) {
        var doomed = segments
        if firstUnshipped > 0 {
            let following = state.withLock { ($0.retired.first ?? $0.segment).firstLSN }
            var kept: [Segment] = []
            var keptBytes = 0
            // Newest first, so that the bound drops the oldest.
            for index in segments.indices.reversed() {
                let nextFirst = index + 1 < segments.count ? segments[index + 1].firstLSN : following
                guard nextFirst > firstUnshipped else { break }  // ends before the first unshipped entry
                guard keptBytes + segments[index].sizeBytes <= StorageLimits.maximumUnshippedWALBytes else {
                    StorageLog.write("wal: over \(StorageLimits.maximumUnshippedWALBytes) bytes not yet shipped in \(directory); "
                        + "discarding from LSN \(segments[index].firstLSN) down (followers behind it need a newer snapshot)")
                    break
                }
                keptBytes += segments[index].sizeBytes
                kept.insert(segments[index], at: 0)
            }
            if !kept.isEmpty {
                doomed.removeLast(kept.count)
                state.withLock { $0.retired.insert(contentsOf: kept, at: 0) }
            }
        }
        for segment in doomed {
            disk.system.close(segment.file)
            disk.system.unlink(segment.path)
        }
        try? disk.syncDirectory(directory)
    }

    /// Durable entries from `cursor.nextLSN` on, as frames, about `maximumBytes`
    /// at most (always one whole entry when one is there). Acknowledged entries
    /// only: nothing past the durable LSN leaves the log, so a reader never sees
    /// a batch the writer could still lose.
    func readDurable(_ cursor: WALReadCursor, maximumBytes: Int) throws -> WALDurableRead {
        precondition(maximumBytes > 0 && cursor.nextLSN > 0, "a positive read")
        let (segments, durable) = state.withLock { state in
            ((state.retired + [state.segment]).map { (firstLSN: $0.firstLSN, path: $0.path) }, state.durableLSN)
        }
        guard cursor.nextLSN <= durable else { return .nothing }
        guard let index = segments.lastIndex(where: { $0.firstLSN <= cursor.nextLSN }) else {
            return .gap(oldestLSN: segments.first?.firstLSN ?? durable + 1)
        }
        let segment = segments[index]
        var offset = segment.firstLSN == cursor.segmentFirstLSN ? cursor.offset : 0
        let system = disk.system
        let file: FileDescriptor
        do { file = try system.open(segment.path, .read) } catch { return .nothing }  // rotated away meanwhile: next round
        defer { system.close(file) }
        let size = try system.sizeBytes(file)
        var header = [UInt8](repeating: 0, count: WALFrame.headerBytes)
        var frames: [UInt8] = []
        var first: LSN = 0
        var last: LSN = 0
        var next = cursor.nextLSN
        while offset + WALFrame.headerBytes <= size && next <= durable {
            let got = try header.withUnsafeMutableBytes { try system.read(file, into: $0, at: offset) }
            guard got == WALFrame.headerBytes else { break }
            let length = header.withUnsafeBytes { Int(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: 4, as: UInt32.self))) }
            guard length <= StorageLimits.maximumEntryBytes, offset + WALFrame.headerBytes + length <= size else { break }
            if !frames.isEmpty && frames.count + WALFrame.headerBytes + length > maximumBytes { break }
            var frame = [UInt8](repeating: 0, count: WALFrame.headerBytes + length)
            let read = try frame.withUnsafeMutableBytes { try system.read(file, into: $0, at: offset) }
            guard read == frame.count, let entry = frame.withUnsafeBytes({ WALFrame.scan($0) }).first else { break }
            offset += frame.count
            if entry.lsn < next { continue }  // before the cursor (a read from the segment's start)
            guard entry.lsn == next else { return .gap(oldestLSN: entry.lsn) }
            if first == 0 { first = entry.lsn }
            last = entry.lsn
            frames += frame
            next += 1
        }
        var after = WALReadCursor(nextLSN: next)
        after.segmentFirstLSN = segment.firstLSN
        after.offset = offset
        // The segment holding the cursor's entry is the last one starting at or
        // before it, so an exhausted segment means the entry is not durable yet.
        if first == 0 { return .nothing }
        return .entries(frames: frames, first: first, last: last, next: after)
    }

    /// The live segments and their durable sizes (for snapshots): every byte
    /// below these sizes is an intact, acknowledged entry.
    func durableSegments() -> [(path: String, firstLSN: LSN, sizeBytes: Int)] {
        state.withLock { state in
            precondition(state.groups.isEmpty && state.pending.isEmpty, "snapshot with writes in flight")
            return (state.retired + [state.segment]).map { ($0.path, $0.firstLSN, $0.sizeBytes) }
        }
    }
}

/// Where a reader of the durable log (the shipper) stands: the LSN it reads
/// next and, as a hint, the segment and byte offset where that entry starts.
package struct WALReadCursor: Sendable, Equatable {
    package var nextLSN: LSN
    package var segmentFirstLSN: LSN = 0
    package var offset = 0
    package init(nextLSN: LSN) { self.nextLSN = nextLSN }
}

package enum WALDurableRead: Equatable {
    /// Whole frames `first...last`, as they are in the log.
    case entries(frames: [UInt8], first: LSN, last: LSN, next: WALReadCursor)
    /// Nothing durable after the cursor yet.
    case nothing
    /// The entry at the cursor is no longer in the log (a checkpoint discarded it).
    case gap(oldestLSN: LSN)
}
