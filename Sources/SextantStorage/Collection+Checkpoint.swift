import SextantIndex

extension Collection {
    func scheduleCheckpoint() {
        guard checkpointRunning.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else { return }
        Task.detached(executorPreference: indexer?.checkpointExecutor) { [self] in
            defer { checkpointRunning.store(false, ordering: .releasing) }
            do { try await checkpoint() } catch { StorageLog.write("checkpoint of \(directory) failed: \(error)") }
        }
    }

    /// Folds the WAL into a new generation of files: pause writers and the
    /// indexer, write the generation, switch to it, resume; then fsync it,
    /// replace the manifest (rename + directory fsync) and delete the WAL
    /// segments and files it made redundant. Readers never wait.
    /// `reservingSlots` grows the new generation's reservation (a write that
    /// did not fit asks for it); a checkpoint also compacts the record heap.
    public func checkpoint(reservingSlots: Int? = nil) async throws {
        try await checkpointLock.withLock {
            let number = current.withLock { $0 }.number + 1
            let generationDirectory = directory + "/" + Manifest.generationDirectory(number)
            let (lastLSN, manifest, dump, covered) = try await writerLock.withLock {
                () throws -> (LSN, Manifest, Generation.Dump, [WriteAheadLog.Segment]) in
                let lastLSN = wal.lastLSN
                try await wal.waitDurable(lastLSN)
                do {
                    let (manifest, dump, covered) = try await Blocking.run(at: indexer?.priority) { [self] in
                        try indexLock.withExclusive {
                            try switchGeneration(number: number, to: generationDirectory, lastLSN: lastLSN, reservingSlots: reservingSlots)
                        }
                    }
                    return (lastLSN, manifest, dump, covered)
                } catch {
                    disk.removeTree(generationDirectory)
                    throw error
                }
            }
            // Writers run again from here; the new generation's files become durable behind them.
            try await Blocking.run(at: indexer?.priority) { [self] in
                try Generation.finish(dump, directory: generationDirectory, disk: disk)
                try disk.writeAtomically(directory + "/" + Manifest.fileName, try manifest.encoded())
                wal.discard(covered, keepingFrom: firstUnshippedLSN.load(ordering: .acquiring))
                for name in disk.list(directory) where name.hasPrefix("gen-") && name != Manifest.generationDirectory(number) {
                    disk.removeTree(directory + "/" + name)
                }
                try disk.syncDirectory(directory)
            }
            state.withLock { $0.checkpointLSN = lastLSN }
        }
    }

    /// With writers and the indexer paused: dump the current generation as
    /// generation `number`, map it, rotate the WAL and make it current.
    private func switchGeneration(number: UInt64, to generationDirectory: String, lastLSN: LSN, reservingSlots: Int?)
        throws -> (Manifest, Generation.Dump, [WriteAheadLog.Segment])
    {
        let previous = current.withLock { $0 }
        let snapshot = state.withLock { $0 }
        var dump = try previous.dump(to: generationDirectory, slotHighWater: Int(snapshot.nextSlot), disk: disk)
        if let bytes = text.serialized() {
            var writer = try ChecksummedWriter(files: disk, path: generationDirectory + "/" + CollectionTextIndex.fileName)
            try bytes.withUnsafeBytes { (raw) throws in try writer.write(raw) }
            dump.files[CollectionTextIndex.fileName] = FileDigest(sizeBytes: writer.size, crc32c: writer.crc)
            dump.writers.append(writer)
        }
        if let bytes = sparse.serialized() {
            var writer = try ChecksummedWriter(files: disk, path: generationDirectory + "/" + CollectionSparseIndexes.fileName)
            try bytes.withUnsafeBytes { (raw) throws in try writer.write(raw) }
            dump.files[CollectionSparseIndexes.fileName] = FileDigest(sizeBytes: writer.size, crc32c: writer.crc)
            dump.writers.append(writer)
        }
        let manifest = Manifest(
            configuration: snapshot.configuration, generation: number, checkpointLSN: lastLSN,
            index: previous.index.state, heapUsedBytes: dump.heapUsedBytes, liveRecords: snapshot.liveRecords,
            files: dump.files, fieldTypes: fieldTypes.withLock { $0 })
        let reserved = StorageLimits.reservedSlots(
            hint: max(snapshot.configuration.capacity, reservingSlots ?? 0), slotsInUse: Int(snapshot.nextSlot))
        let nextLayout = try snapshot.configuration.layout(reservedSlots: max(reserved, layout.capacity))
        let next = try Generation.open(directory: generationDirectory, manifest: manifest, layout: nextLayout, verify: false, disk: disk)
        let covered = try wal.rotate()
        current.withLock { $0 = next }
        return (manifest, dump, covered)
    }

    /// What a snapshot holds: every write up to `lsn`, which leaves `records` live records.
    public struct SnapshotPosition: Sendable, Equatable {
        public var lsn: LSN
        public var records: Int
    }

    /// Writes a point-in-time copy of the collection into `destination` (which
    /// must not exist): the generation's immutable files hard-linked, the WAL
    /// copied up to the last acknowledged batch. It opens to exactly that state.
    @discardableResult
    public func snapshot(to destination: String) async throws -> SnapshotPosition {
        try await checkpointLock.withLock {
            let (lastLSN, records, segments) = try await writerLock.withLock {
                () throws -> (LSN, Int, [(path: String, firstLSN: LSN, sizeBytes: Int)]) in
                let lastLSN = wal.lastLSN
                // Read with the writer lock held: writes are logged and applied under it, so this
                // count is exactly the state at lastLSN (reading it afterwards would include
                // writes the snapshot does not hold).
                let records = count
                try await wal.waitDurable(lastLSN)
                return (lastLSN, records, wal.durableSegments())
            }
            try await Blocking.run(at: indexer?.priority) { [self] in
                guard !disk.exists(destination) else { throw StorageError.alreadyExists("\(destination) exists") }
                let staging = destination + ".partial"
                disk.removeTree(staging)
                try disk.makeDirectories(staging + "/wal")
                let manifest = try Manifest.read(directory + "/" + Manifest.fileName, disk: disk)
                if !manifest.files.isEmpty {
                    let name = Manifest.generationDirectory(manifest.generation)
                    try disk.makeDirectory(staging + "/" + name)
                    for file in manifest.files.keys {
                        try disk.linkOrCopy(directory + "/" + name + "/" + file, staging + "/" + name + "/" + file)
                    }
                }
                for segment in segments {
                    let target = staging + "/wal/" + WriteAheadLog.segmentName(segment.firstLSN)
                    try disk.copyPrefix(segment.path, target, bytes: segment.sizeBytes)
                }
                try disk.writeAtomically(staging + "/" + Manifest.fileName, try manifest.encoded())
                try disk.rename(staging, destination)
                try disk.syncDirectory(Files.directoryName(destination))
            }
            return SnapshotPosition(lsn: lastLSN, records: records)
        }
    }
}
