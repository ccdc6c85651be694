import CSextantKernels
import SextantIndex
import SextantKernels
import SextantPayload

#if canImport(Glibc)
import Glibc
#endif

/// A record as callers write it.
public struct RecordInput: Sendable, Equatable {
    public var id: String
    public var vector: [Float]?
    public var document: String?
    public var metadata: Metadata?

    public init(id: String, vector: [Float]? = nil, document: String? = nil, metadata: Metadata? = nil) {
        self.id = id
        self.vector = vector
        self.document = document
        self.metadata = metadata
    }
}

/// A record as readers see it; fields not asked for are nil.
public struct RecordView: Sendable, Equatable {
    public var id: String
    public var document: String?
    public var metadata: Metadata?
    public var vector: [Float]?
    public var distance: Float?
    /// Higher is better: BM25 for a lexical search, the fused score for a
    /// hybrid one (nil for a semantic search, which reports `distance`).
    public var score: Double?
}

/// The resolved form of every mutation, as logged and replayed: writes are
/// validated and turned into puts and deletes of whole records before they
/// reach the WAL, so replay needs no state to decide anything.
package enum ResolvedOperation {
    case put(id: [UInt8], halves: [UInt16], document: [UInt8]?, metadata: [UInt8])
    case delete(id: [UInt8])
}

/// Heap record: u16 idBytes, u32 documentBytes (0xFFFFFFFF = no document),
/// u32 metadataBytes, then the three byte strings.
enum RecordCodec {
    static let headerBytes = 10
    static let noDocument = UInt32.max

    static func encodedSize(id: [UInt8], document: [UInt8]?, metadata: [UInt8]) -> Int {
        headerBytes + id.count + (document?.count ?? 0) + metadata.count
    }

    static func write(id: [UInt8], document: [UInt8]?, metadata: [UInt8], to out: inout [UInt8]) {
        append(UInt16(id.count), &out)
        append(document.map { UInt32($0.count) } ?? noDocument, &out)
        append(UInt32(metadata.count), &out)
        out.append(contentsOf: id)
        if let document { out.append(contentsOf: document) }
        out.append(contentsOf: metadata)
    }

    static func write(id: [UInt8], document: [UInt8]?, metadata: [UInt8], at destination: UnsafeMutableRawPointer) {
        var cursor = destination
        func put<T: FixedWidthInteger>(_ value: T) {
            cursor.storeBytes(of: value.littleEndian, as: T.self)
            cursor += MemoryLayout<T>.size
        }
        func put(_ bytes: [UInt8]) {
            bytes.withUnsafeBytes { if let base = $0.baseAddress { cursor.copyMemory(from: base, byteCount: $0.count) } }
            cursor += bytes.count
        }
        put(UInt16(id.count))
        put(document.map { UInt32($0.count) } ?? noDocument)
        put(UInt32(metadata.count))
        put(id)
        if let document { put(document) }
        put(metadata)
    }

    static func append<T: FixedWidthInteger>(_ value: T, _ out: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }

    /// Views into one heap record (no copies).
    struct View {
        let id: UnsafeRawBufferPointer
        let document: UnsafeRawBufferPointer?
        let metadata: UnsafeRawBufferPointer
        let totalBytes: Int
    }

    static func view(at base: UnsafeRawPointer, available: Int) -> View? {
        guard available >= headerBytes else { return nil }
        let idBytes = Int(UInt16(littleEndian: base.loadUnaligned(as: UInt16.self)))
        let documentField = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
        let metadataBytes = Int(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 6, as: UInt32.self)))
        let documentBytes = documentField == noDocument ? 0 : Int(documentField)
        let total = headerBytes + idBytes + documentBytes + metadataBytes
        guard total <= available else { return nil }
        let id = UnsafeRawBufferPointer(start: base + headerBytes, count: idBytes)
        let document =
            documentField == noDocument ? nil : UnsafeRawBufferPointer(start: base + headerBytes + idBytes, count: documentBytes)
        let metadata = UnsafeRawBufferPointer(start: base + headerBytes + idBytes + documentBytes, count: metadataBytes)
        return View(id: id, document: document, metadata: metadata, totalBytes: total)
    }
}

/// WAL payload of one batch: u32 operation count, then per operation
/// u8 kind (1 put, 2 delete); put = heap record + dimensions × f16; delete = u16 + id.
package enum BatchCodec {
    static let put: UInt8 = 1
    static let delete: UInt8 = 2

    static func encode(_ operations: [ResolvedOperation], pace: () -> Void = {}) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(encodedSize(operations))  // one allocation, no regrowth copies
        RecordCodec.append(UInt32(operations.count), &out)
        for operation in operations {
            pace()
            switch operation {
            case .put(let id, let halves, let document, let metadata):
                out.append(put)
                RecordCodec.write(id: id, document: document, metadata: metadata, to: &out)
                halves.withUnsafeBytes { out.append(contentsOf: $0) }
            case .delete(let id):
                out.append(delete)
                RecordCodec.append(UInt16(id.count), &out)
                out.append(contentsOf: id)
            }
        }
        assert(out.count == encodedSize(operations), "encodedSize matches encode")
        return out
    }

    /// The bytes `encode` writes.
    static func encodedSize(_ operations: [ResolvedOperation]) -> Int {
        var total = 4
        for operation in operations {
            switch operation {
            case .put(let id, let halves, let document, let metadata):
                total += 1 + RecordCodec.encodedSize(id: id, document: document, metadata: metadata) + halves.count * 2
            case .delete(let id):
                total += 1 + 2 + id.count
            }
        }
        return total
    }

    /// The operations a batch holds, from its header alone (0 for a short payload).
    package static func operationCount(_ payload: [UInt8]) -> Int {
        guard payload.count >= 4 else { return 0 }
        return Int(payload.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) })
    }

    package static func decode(_ payload: [UInt8], dimensions: Int) throws -> [ResolvedOperation] {
        let result: Result<[ResolvedOperation], StorageError> = payload.withUnsafeBytes { raw in
            var reader = ByteReader(raw)
            do {
                let count = try reader.integer(UInt32.self)
                var operations: [ResolvedOperation] = []
                // Every operation takes at least 3 bytes (kind and id length), so a
                // damaged count cannot reserve more than the payload could hold.
                operations.reserveCapacity(min(Int(count), raw.count / 3))
                for _ in 0..<count {
                    switch try reader.integer(UInt8.self) {
                    case put:
                        let idBytes = try reader.integer(UInt16.self)
                        let documentField = try reader.integer(UInt32.self)
                        let metadataBytes = try reader.integer(UInt32.self)
                        let id = Array(try reader.bytes(Int(idBytes)))
                        let document =
                            documentField == RecordCodec.noDocument ? nil : Array(try reader.bytes(Int(documentField)))
                        let metadata = Array(try reader.bytes(Int(metadataBytes)))
                        let vectorBytes = try reader.bytes(dimensions * 2)
                        let halves = Array(vectorBytes.bindMemory(to: UInt16.self))
                        operations.append(.put(id: id, halves: halves, document: document, metadata: metadata))
                    case delete:
                        let idBytes = try reader.integer(UInt16.self)
                        operations.append(.delete(id: Array(try reader.bytes(Int(idBytes)))))
                    case let kind:
                        throw PayloadError.corrupted("unknown operation kind \(kind)")
                    }
                }
                return .success(operations)
            } catch {
                return .failure(.corrupted("WAL batch does not decode: \(error)"))
            }
        }
        return try result.get()
    }
}

/// Per-slot record locations and the record heap, for one generation.
///
///   slots:   slot × [heapOffset u64, recordBytes u32, state u32]  (state 1 = live)
///   heap:    records back to back; appended to, compacted by each checkpoint
///
/// A slot's heap bytes are written before the slot is published and never
/// change until the heap is compacted (in a new generation), so readers need no
/// lock. A live slot's record may be replaced (same vector, new document or
/// metadata): the new bytes are appended, then the size and, with release
/// ordering, the offset are stored; a reader that pairs an old offset with a new
/// size sees a header that disagrees and reads again.
final class RecordStore: @unchecked Sendable {
    static let slotStrideBytes = 16
    let slots: MemoryRegion
    let heap: MemoryRegion
    private(set) var heapUsedBytes: Int
    let capacity: Int

    init(slots: MemoryRegion, heap: MemoryRegion, heapUsedBytes: Int, capacity: Int) {
        self.slots = slots
        self.heap = heap
        self.heapUsedBytes = heapUsedBytes
        self.capacity = capacity
    }

    @inline(__always) private func entry(_ slot: UInt32) -> UnsafeMutableRawPointer {
        slots.base + Int(slot) * Self.slotStrideBytes
    }

    func isLive(_ slot: UInt32) -> Bool {
        sx_load_acquire_u32((entry(slot) + 12).assumingMemoryBound(to: UInt32.self)) & 1 != 0
    }

    /// The raw heap bytes of a slot's record.
    func recordBytes(_ slot: UInt32) -> UnsafeRawBufferPointer? {
        guard let (offset, view) = located(slot) else { return nil }
        return UnsafeRawBufferPointer(start: heap.base + offset, count: view.totalBytes)
    }

    func record(_ slot: UInt32) -> RecordCodec.View? { located(slot)?.view }

    /// Offset and view of a slot's record, consistent under a concurrent `store` to a live slot.
    private func located(_ slot: UInt32) -> (offset: Int, view: RecordCodec.View)? {
        let pointer = entry(slot)
        for _ in 0..<Self.consistentReadAttempts {
            let offset = Int(sx_load_acquire_u64(pointer.assumingMemoryBound(to: UInt64.self)))
            let bytes = Int(pointer.load(fromByteOffset: 8, as: UInt32.self))
            guard bytes > 0, offset + bytes <= heap.reservedBytes else { return nil }
            if let view = RecordCodec.view(at: heap.base + offset, available: bytes), view.totalBytes == bytes {
                return (offset, view)
            }
        }
        return nil  // a header that never matches its size: damage (the files' checksums say where)
    }

    /// A store stores two fields; a reader needs at most one more attempt per
    /// store that lands between its loads.
    private static let consistentReadAttempts = 8

    /// Appends a record to the heap and points `slot` at it: a new slot (not yet
    /// live), or a live one getting a new version of its record (same vector).
    func store(slot: UInt32, id: [UInt8], document: [UInt8]?, metadata: [UInt8]) throws {
        let size = RecordCodec.encodedSize(id: id, document: document, metadata: metadata)
        guard heapUsedBytes + size <= heap.reservedBytes else {
            throw StorageError.resourceExhausted("record heap full (\(heap.reservedBytes) bytes); a checkpoint compacts it")
        }
        RecordCodec.write(id: id, document: document, metadata: metadata, at: heap.base + heapUsedBytes)
        let pointer = entry(slot)
        pointer.storeBytes(of: UInt32(size), toByteOffset: 8, as: UInt32.self)
        sx_store_release_u64(pointer.assumingMemoryBound(to: UInt64.self), UInt64(heapUsedBytes))
        heapUsedBytes += size
    }

    /// True if `slot` holds a live record matching both filters (nil matches everything).
    func matches(_ slot: UInt32, _ filter: WhereFilter?, _ documentFilter: DocumentFilter?) -> Bool {
        guard isLive(slot), let view = record(slot) else { return false }
        if let filter, !filter.matches(view.metadata, id: view.id) { return false }
        if let documentFilter, !documentFilter.matches(view.document) { return false }
        return true
    }

    /// Release store: a reader that sees the slot live also sees its record.
    func setLive(_ slot: UInt32, _ live: Bool) {
        sx_store_release_u32((entry(slot) + 12).assumingMemoryBound(to: UInt32.self), live ? 1 : 0)
    }
}
