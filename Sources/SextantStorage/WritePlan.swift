import Foundation
import SextantIndex
import SextantPayload

/// What planning a write reads of a collection, and nothing it could change:
/// the collection answers from its id map and current generation; tests answer
/// from a dictionary, so every rule of the plan runs without a disk.
package protocol WritePlanState {
    /// The slot of a live record.
    func slot(of id: String) -> UInt32?
    /// The stored document and encoded metadata of a live slot.
    func storedRecord(_ slot: UInt32) -> (document: [UInt8]?, metadata: [UInt8])?
    /// The stored float16 vector of a live slot.
    func storedHalves(_ slot: UInt32) -> [UInt16]
    /// True if the slot stores exactly these float16 values.
    func storesHalves(_ slot: UInt32, _ halves: [UInt16]) -> Bool
    /// Ids of live records matching both filters (nil matches everything).
    func ids(matching filter: WhereFilter?, _ documentFilter: DocumentFilter?) -> [String]
    /// Slots a put of a new record can still take in the current reservation.
    var availableSlots: Int { get }
    /// Slots reserved now (grows at a checkpoint) and in use (the high-water mark).
    var capacity: Int { get }
    var slotsInUse: Int { get }
    /// Bytes the record heap can still take before a checkpoint compacts it.
    var heapBytesAvailable: Int { get }
}

/// Room a write needs that the current generation lacks: a checkpoint that
/// reserves this many slots (and compacts the heap) makes it.
package struct Growth: Equatable, Sendable {
    package var slots: Int
    package init(slots: Int) { self.slots = slots }
}

/// A write, from request to the puts and deletes of whole records that the
/// WAL logs and apply replays:
///
/// 1. `prepare` validates the request and encodes it in stored form (float16
///    vectors, encoded metadata), needing only the collection's layout: it runs
///    outside every lock, and is the bulk of a write's CPU.
/// 2. `resolve` checks the prepared write against the current state (an add of
///    an existing id, an update of a missing one) and turns it into operations.
/// 3. `checkCapacity` refuses a batch that needs more new slots than remain.
///
/// Everything that can refuse a write runs here, before anything is logged or
/// applied, so a refused write leaves no trace.
package enum WritePlan {
    /// Validated input in stored form: everything that needs no collection state.
    package struct Prepared {
        package enum Kind: Equatable { case add, upsert, update(ignoreMissing: Bool), delete, deleteWhere }
        package var kind: Kind
        package var records: [PreparedRecord] = []
        package var deleteIds: [String] = []
        package var filter: WhereFilter?
        package var documentFilter: DocumentFilter?

        /// Records that may take a new slot (and a place in the unindexed tail).
        package var newRecordCount: Int {
            switch kind {
            case .add, .upsert, .update: return records.count
            case .delete, .deleteWhere: return 0
            }
        }
    }

    package struct PreparedRecord {
        package var id: String
        package var halves: [UInt16]?
        package var document: [UInt8]?
        package var hasDocument: Bool
        package var metadata: [UInt8]?
    }

    /// The resolved operations and how many records they affect.
    package struct Resolved {
        package var operations: [ResolvedOperation]
        package var affected: Int { operations.count }
    }

    // MARK: - Prepare

    /// `pace` runs before each record: with reads first, the storage layer steps
    /// off the CPU there while queries run.
    package static func prepare(_ request: WriteRequest, layout: HNSWLayout, pace: () -> Void = {}) throws -> Prepared {
        switch request {
        case .add(let records):
            return Prepared(kind: .add, records: try prepareRecords(records, layout: layout, needVectors: true, pace: pace))
        case .upsert(let records):
            return Prepared(kind: .upsert, records: try prepareRecords(records, layout: layout, needVectors: true, pace: pace))
        case .update(let records, let ignoreMissing):
            return Prepared(kind: .update(ignoreMissing: ignoreMissing),
                            records: try prepareRecords(records, layout: layout, needVectors: false, pace: pace))
        case .delete(let ids):
            try checkBatch(ids)
            return Prepared(kind: .delete, deleteIds: ids)
        case .deleteWhere(let filter, let documentFilter):
            do { try FilterValidation.validate(filter, documentFilter) } catch { throw StorageError(error) }
            guard filter != nil || documentFilter != nil else {
                throw StorageError.invalidArgument("delete needs ids or a filter")
            }
            return Prepared(kind: .deleteWhere, filter: filter, documentFilter: documentFilter)
        }
    }

    static func checkBatch(_ ids: [String]) throws {
        guard !ids.isEmpty else { throw StorageError.invalidArgument("the batch is empty") }
        guard ids.count <= StorageLimits.maximumBatchRecords else {
            throw StorageError.invalidArgument("batch of \(ids.count) records exceeds \(StorageLimits.maximumBatchRecords)")
        }
        var seen = Set<String>()
        seen.reserveCapacity(ids.count)
        for id in ids {
            let bytes = id.utf8.count
            guard bytes > 0, bytes <= StorageLimits.maximumIdBytes else {
                throw StorageError.invalidArgument("id '\(id.prefix(60))' must be 1...\(StorageLimits.maximumIdBytes) bytes")
            }
            guard seen.insert(id).inserted else { throw StorageError.invalidArgument("id '\(id.prefix(60))' appears twice in the batch") }
        }
    }

    private static func prepareRecords(_ records: [RecordInput], layout: HNSWLayout, needVectors: Bool, pace: () -> Void)
        throws -> [PreparedRecord]
    {
        try checkBatch(records.map(\.id))
        var prepared: [PreparedRecord] = []
        prepared.reserveCapacity(records.count)
        for record in records {
            pace()
            let name = "record '\(record.id.prefix(60))'"
            var halves: [UInt16]? = nil
            if let vector = record.vector {
                do { halves = try vector.withUnsafeBufferPointer { (buffer) throws(IndexError) in try layout.storedForm(buffer) } } catch {
                    throw StorageError.invalidArgument("\(name): \(StorageError(error).message)")
                }
            } else if needVectors {
                throw StorageError.invalidArgument("\(name) has no vector")
            }
            if let document = record.document, document.utf8.count > StorageLimits.maximumDocumentBytes {
                throw StorageError.invalidArgument("\(name): document exceeds \(StorageLimits.maximumDocumentBytes) bytes")
            }
            var metadata: [UInt8]? = nil
            if let values = record.metadata {
                do { try MetadataCodec.validate(values) } catch { throw StorageError.invalidArgument("\(name): \(error)") }
                metadata = MetadataCodec.encode(values)
            }
            prepared.append(PreparedRecord(
                id: record.id, halves: halves, document: record.document.map { Array($0.utf8) },
                hasDocument: record.document != nil, metadata: metadata))
        }
        assert(prepared.count == records.count, "one prepared record per input")
        return prepared
    }

    // MARK: - Resolve

    /// Turns a prepared write into puts and deletes of whole records, checking
    /// it against `state`. Throws before anything is logged or applied.
    package static func resolve(_ prepared: Prepared, in state: some WritePlanState, pace: () -> Void = {}) throws -> Resolved {
        let emptyMetadata = MetadataCodec.encode([:])
        switch prepared.kind {
        case .add, .upsert:
            if prepared.kind == .add {
                for record in prepared.records where state.slot(of: record.id) != nil {
                    throw StorageError.alreadyExists("record '\(record.id.prefix(60))' already exists")
                }
            }
            let operations = prepared.records.map { record in
                pace()
                return ResolvedOperation.put(
                    id: Array(record.id.utf8), halves: record.halves ?? [], document: record.document,
                    metadata: record.metadata ?? emptyMetadata)
            }
            return Resolved(operations: operations)
        case .update(let ignoreMissing):
            var operations: [ResolvedOperation] = []
            for record in prepared.records {
                pace()
                guard let slot = state.slot(of: record.id), let stored = state.storedRecord(slot) else {
                    if ignoreMissing { continue }
                    throw StorageError.notFound("record '\(record.id.prefix(60))' does not exist")
                }
                operations.append(.put(
                    id: Array(record.id.utf8), halves: record.halves ?? state.storedHalves(slot),
                    document: record.hasDocument ? record.document : stored.document,
                    metadata: record.metadata ?? stored.metadata))
            }
            return Resolved(operations: operations)
        case .delete:
            return Resolved(operations: prepared.deleteIds.filter { state.slot(of: $0) != nil }.map { .delete(id: Array($0.utf8)) })
        case .deleteWhere:
            let ids = state.ids(matching: prepared.filter, prepared.documentFilter)
            return Resolved(operations: ids.map { .delete(id: Array($0.utf8)) })
        }
    }

    // MARK: - Capacity

    /// Checks that a batch fits: its new records in the free slots, its record
    /// bytes in the heap. A put that keeps its record's vector is replaced in
    /// place and needs no slot. Returns the growth a checkpoint must make when
    /// it does not fit yet (nil when it fits); throws only past the maximum
    /// number of slots a collection can have.
    package static func checkCapacity(_ resolved: Resolved, in state: some WritePlanState) throws -> Growth? {
        var allPuts = 0
        var recordBytes = 0
        for operation in resolved.operations {
            guard case .put(let id, _, let document, let metadata) = operation else { continue }
            allPuts += 1
            recordBytes += RecordCodec.encodedSize(id: id, document: document, metadata: metadata)
        }
        let available = state.availableSlots
        var needed = allPuts
        if allPuts > available {  // the common case skips the vector comparisons: apply does them
            needed = resolved.operations.reduce(0) { count, operation in
                guard case .put(let id, let halves, _, _) = operation else { return count }
                if let existing = state.slot(of: String(decoding: id, as: UTF8.self)), state.storesHalves(existing, halves) {
                    return count
                }
                return count + 1
            }
        }
        // The reservation must grow by the shortfall (at least; a checkpoint doubles it).
        let slotsNeeded = state.capacity + max(0, needed - available)
        assert(state.slotsInUse <= state.capacity, "slots in use lie inside the reservation")
        guard slotsNeeded <= StorageLimits.maximumCollectionCapacity else {
            throw StorageError.resourceExhausted(
                "collection capacity: \(needed) new records, room for \(available) of at most \(StorageLimits.maximumCollectionCapacity) slots")
        }
        guard needed <= available, recordBytes <= state.heapBytesAvailable else {
            return Growth(slots: slotsNeeded)
        }
        return nil
    }
}
