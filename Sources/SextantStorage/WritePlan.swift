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
    /// Slots a put of a new record can still take.
    var availableSlots: Int { get }
    var capacity: Int { get }
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
    package static func resolve(_ prepared: Prepared, in state: some WritePlanState) throws -> Resolved {
        let emptyMetadata = MetadataCodec.encode([:])
        switch prepared.kind {
        case .add, .upsert:
            if prepared.kind == .add {
                for record in prepared.records where state.slot(of: record.id) != nil {
                    throw StorageError.alreadyExists("record '\(record.id.prefix(60))' already exists")
                }
            }
            let operations = prepared.records.map { record in
                ResolvedOperation.put(
                    id: Array(record.id.utf8), halves: record.halves ?? [], document: record.document,
                    metadata: record.metadata ?? emptyMetadata)
            }
            return Resolved(operations: operations)
        case .update(let ignoreMissing):
            var operations: [ResolvedOperation] = []
            for record in prepared.records {
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

    /// Refuses a batch that needs more new slots than the collection has left.
    /// A put that keeps its record's vector is replaced in place and needs none.
    package static func checkCapacity(_ resolved: Resolved, in state: some WritePlanState) throws {
        let available = state.availableSlots
        let allPuts = resolved.operations.reduce(0) { count, operation in
            if case .put = operation { return count + 1 }
            return count
        }
        guard allPuts > available else { return }  // the common case: no vector comparisons here, apply does them
        let puts = resolved.operations.reduce(0) { count, operation in
            guard case .put(let id, let halves, _, _) = operation else { return count }
            if let existing = state.slot(of: String(decoding: id, as: UTF8.self)), state.storesHalves(existing, halves) {
                return count
            }
            return count + 1
        }
        guard puts <= available else {
            throw StorageError.resourceExhausted(
                "collection capacity: \(puts) new records, room for \(available) (capacity \(state.capacity) slots)")
        }
    }
}
