/// A metadata value: the four scalar types ChromaDB accepts, and a sparse
/// vector, which Chroma keeps inside metadata under a key the collection
/// declares for a sparse index.
public enum MetadataValue: Sendable, Hashable, CustomStringConvertible {
    case string(String)
    case int(Int64)
    case double(Double)
    case bool(Bool)
    case sparseVector(SparseVector)

    public var description: String {
        switch self {
        case .string(let value): return "\"\(value)\""
        case .int(let value): return "\(value)"
        case .double(let value): return "\(value)"
        case .bool(let value): return "\(value)"
        case .sparseVector(let vector): return "sparse(\(vector.indices.count) entries)"
        }
    }

    var typeCode: UInt8 {
        switch self {
        case .string: return 1
        case .int: return 2
        case .double: return 3
        case .bool: return 4
        case .sparseVector: return 5
        }
    }

    /// A string, number or boolean: what collection metadata and filter operands hold.
    public var isScalar: Bool {
        if case .sparseVector = self { return false }
        return true
    }

    /// Numeric view for comparisons: ints and floats compare by value, as users expect.
    public var number: Double? {
        switch self {
        case .int(let value): return Double(value)
        case .double(let value): return value
        default: return nil
        }
    }
}

/// A sparse vector: strictly ascending dimension indices with their values,
/// and optionally a label per entry (the token a BM25 function hashed).
public struct SparseVector: Sendable, Hashable {
    public var indices: [UInt32]
    public var values: [Float]
    public var labels: [String]?

    public init(indices: [UInt32], values: [Float], labels: [String]? = nil) {
        self.indices = indices
        self.values = values
        self.labels = labels
    }

    /// Checks the shape a sparse index relies on; the message names `path`.
    public func validate(path: String) throws(PayloadError) {
        guard indices.count == values.count else {
            throw .invalidMetadata("\(path): \(indices.count) indices but \(values.count) values")
        }
        guard indices.count <= MetadataLimits.maximumSparseEntries else {
            throw .invalidMetadata("\(path): \(indices.count) entries, at most \(MetadataLimits.maximumSparseEntries) allowed")
        }
        for position in indices.indices.dropFirst() where indices[position - 1] >= indices[position] {
            throw .invalidMetadata("\(path): indices must be strictly ascending (\(indices[position - 1]) then \(indices[position]))")
        }
        guard values.allSatisfy(\.isFinite) else { throw .invalidMetadata("\(path): values must be finite") }
        if let labels {
            guard labels.count == indices.count else {
                throw .invalidMetadata("\(path): \(labels.count) labels for \(indices.count) entries")
            }
            guard labels.allSatisfy({ $0.utf8.count <= MetadataLimits.maximumKeyBytes }) else {
                throw .invalidMetadata("\(path): a label exceeds \(MetadataLimits.maximumKeyBytes) bytes")
            }
        }
    }

    /// The dot product with another sparse vector (both sorted by index).
    public func dot(_ other: SparseVector) -> Double {
        var total = 0.0
        var left = 0
        var right = 0
        while left < indices.count, right < other.indices.count {
            if indices[left] == other.indices[right] {
                total += Double(values[left]) * Double(other.values[right])
                left += 1
                right += 1
            } else if indices[left] < other.indices[right] {
                left += 1
            } else {
                right += 1
            }
        }
        return total
    }

    var encodedBytes: Int {
        5 + indices.count * 8 + (labels?.reduce(0) { $0 + 2 + $1.utf8.count } ?? 0)
    }
}

/// Record metadata. Keys are unique, order is not significant.
public typealias Metadata = [String: MetadataValue]

public enum PayloadError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidMetadata(String)
    case invalidFilter(String)
    case corrupted(String)

    public var description: String {
        switch self {
        case .invalidMetadata(let message): return "invalid metadata: \(message)"
        case .invalidFilter(let message): return "invalid filter: \(message)"
        case .corrupted(let message): return "corrupted payload: \(message)"
        }
    }
}

/// Bounds on metadata, enforced before anything is written.
public enum MetadataLimits {
    public static let maximumKeys = 256
    public static let maximumKeyBytes = 256
    public static let maximumStringBytes = 65_536
    public static let maximumEncodedBytes = 262_144
    /// Non-zero entries of one sparse vector (a long document's BM25 terms fit many times over).
    public static let maximumSparseEntries = 16_384
}

/// Compact little-endian encoding used in the WAL and the record heap:
///   u16 count, then per entry (keys sorted): u16 keyLength, key, u8 type, value
///   value: string = u32 length + UTF-8; int = i64; double = f64 bits; bool = u8.
public enum MetadataCodec {
    public static func validate(_ metadata: Metadata) throws(PayloadError) {
        guard metadata.count <= MetadataLimits.maximumKeys else {
            throw .invalidMetadata("\(metadata.count) keys, at most \(MetadataLimits.maximumKeys) allowed")
        }
        var total = 2
        for (key, value) in metadata {
            let keyBytes = key.utf8.count
            guard keyBytes > 0, keyBytes <= MetadataLimits.maximumKeyBytes else {
                throw .invalidMetadata("key '\(key.prefix(40))' must be 1...\(MetadataLimits.maximumKeyBytes) bytes")
            }
            guard !key.hasPrefix("#") && !key.hasPrefix("$") else {
                throw .invalidMetadata("key '\(key.prefix(40))' may not start with '#' or '$' (reserved)")
            }
            total += 3 + keyBytes
            switch value {
            case .string(let text):
                guard text.utf8.count <= MetadataLimits.maximumStringBytes else {
                    throw .invalidMetadata("value of '\(key.prefix(40))' exceeds \(MetadataLimits.maximumStringBytes) bytes")
                }
                total += 4 + text.utf8.count
            case .double(let number):
                guard number.isFinite else { throw .invalidMetadata("value of '\(key.prefix(40))' is not finite") }
                total += 8
            case .int: total += 8
            case .bool: total += 1
            case .sparseVector(let vector):
                try vector.validate(path: "value of '\(key.prefix(40))'")
                total += vector.encodedBytes
            }
        }
        guard total <= MetadataLimits.maximumEncodedBytes else {
            throw .invalidMetadata("encoded size \(total) exceeds \(MetadataLimits.maximumEncodedBytes) bytes")
        }
    }

    public static func encode(_ metadata: Metadata, into out: inout [UInt8]) {
        appendInteger(UInt16(metadata.count), to: &out)
        for key in metadata.keys.sorted() {
            guard let value = metadata[key] else { continue }
            appendInteger(UInt16(key.utf8.count), to: &out)
            out.append(contentsOf: key.utf8)
            out.append(value.typeCode)
            switch value {
            case .string(let text):
                appendInteger(UInt32(text.utf8.count), to: &out)
                out.append(contentsOf: text.utf8)
            case .int(let number): appendInteger(UInt64(bitPattern: number), to: &out)
            case .double(let number): appendInteger(number.bitPattern, to: &out)
            case .bool(let flag): out.append(flag ? 1 : 0)
            case .sparseVector(let vector):
                appendInteger(UInt32(vector.indices.count), to: &out)
                for index in vector.indices { appendInteger(index, to: &out) }
                for value in vector.values { appendInteger(value.bitPattern, to: &out) }
                if let labels = vector.labels {
                    out.append(1)
                    for label in labels {
                        appendInteger(UInt16(label.utf8.count), to: &out)
                        out.append(contentsOf: label.utf8)
                    }
                } else {
                    out.append(0)
                }
            }
        }
    }

    public static func encode(_ metadata: Metadata) -> [UInt8] {
        var out: [UInt8] = []
        encode(metadata, into: &out)
        return out
    }

    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(PayloadError) -> Metadata {
        var reader = ByteReader(bytes)
        var result = Metadata()
        let count = try reader.integer(UInt16.self)
        result.reserveCapacity(Int(count))
        for _ in 0..<count {
            let (key, value) = try reader.entry()
            result[key] = value
        }
        return result
    }

    /// Finds one key's value without decoding the rest: the filter hot path.
    public static func value(of key: String, in bytes: UnsafeRawBufferPointer) -> MetadataValue? {
        var reader = ByteReader(bytes)
        guard let count = try? reader.integer(UInt16.self) else { return nil }
        var wanted = key
        return wanted.withUTF8 { keyBytes -> MetadataValue? in
            for _ in 0..<count {
                guard let keyLength = try? reader.integer(UInt16.self),
                    let candidate = try? reader.bytes(Int(keyLength))
                else { return nil }
                let matches = candidate.count == keyBytes.count && memcmpEqual(candidate, keyBytes)
                if matches { return try? reader.value() }
                guard (try? reader.skipValue()) != nil else { return nil }
            }
            return nil
        }
    }

    static func appendInteger<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }
}

@inline(__always)
func memcmpEqual(_ a: UnsafeRawBufferPointer, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
    for index in 0..<a.count where a[index] != b[index] { return false }
    return true
}

/// Bounds-checked little-endian reader over raw bytes; every read can fail
/// with `.corrupted` instead of trapping on a short or damaged buffer.
public struct ByteReader {
    public let bytes: UnsafeRawBufferPointer
    public private(set) var offset = 0

    public init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    public var remaining: Int { bytes.count - offset }

    public mutating func integer<T: FixedWidthInteger>(_: T.Type) throws(PayloadError) -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw .corrupted("short read of \(size) bytes at \(offset)") }
        let value = bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += size
        return T(littleEndian: value)
    }

    public mutating func bytes(_ count: Int) throws(PayloadError) -> UnsafeRawBufferPointer {
        guard count >= 0, remaining >= count else { throw .corrupted("short read of \(count) bytes at \(offset)") }
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
    }

    public mutating func string(_ count: Int) throws(PayloadError) -> String {
        let raw = try bytes(count)
        guard let text = String(validating: raw.bindMemory(to: UInt8.self), as: UTF8.self) else {
            throw .corrupted("invalid UTF-8 at \(offset - count)")
        }
        return text
    }

    mutating func entry() throws(PayloadError) -> (String, MetadataValue) {
        let keyLength = try integer(UInt16.self)
        let key = try string(Int(keyLength))
        return (key, try value())
    }

    mutating func value() throws(PayloadError) -> MetadataValue {
        let type = try integer(UInt8.self)
        switch type {
        case 1: return .string(try string(Int(try integer(UInt32.self))))
        case 2: return .int(Int64(bitPattern: try integer(UInt64.self)))
        case 3: return .double(Double(bitPattern: try integer(UInt64.self)))
        case 4: return .bool(try integer(UInt8.self) != 0)
        case 5: return .sparseVector(try sparseVector())
        default: throw .corrupted("unknown metadata type \(type)")
        }
    }

    mutating func sparseVector() throws(PayloadError) -> SparseVector {
        let count = Int(try integer(UInt32.self))
        guard count <= MetadataLimits.maximumSparseEntries, remaining >= count * 8 + 1 else {
            throw .corrupted("sparse vector of \(count) entries at \(offset)")
        }
        var indices: [UInt32] = []
        var values: [Float] = []
        indices.reserveCapacity(count)
        values.reserveCapacity(count)
        for _ in 0..<count { indices.append(try integer(UInt32.self)) }
        for _ in 0..<count { values.append(Float(bitPattern: try integer(UInt32.self))) }
        var labels: [String]?
        if try integer(UInt8.self) != 0 {
            var read: [String] = []
            read.reserveCapacity(count)
            for _ in 0..<count { read.append(try string(Int(try integer(UInt16.self)))) }
            labels = read
        }
        return SparseVector(indices: indices, values: values, labels: labels)
    }

    mutating func skipValue() throws(PayloadError) {
        let type = try integer(UInt8.self)
        switch type {
        case 1: _ = try bytes(Int(try integer(UInt32.self)))
        case 2, 3: _ = try bytes(8)
        case 4: _ = try bytes(1)
        case 5: _ = try sparseVector()
        default: throw .corrupted("unknown metadata type \(type)")
        }
    }
}

/// Which value types a collection's records have held under each metadata
/// key, as a bit mask per key (`MetadataValue.typeBit`). Kept by the
/// collection so a filter comparing a field with a type it never holds (a
/// `$gt` on a text field) is refused by name instead of matching nothing.
public enum MetadataTypes {
    public static let string: UInt8 = 1
    public static let int: UInt8 = 2
    public static let double: UInt8 = 4
    public static let bool: UInt8 = 8
    public static let sparseVector: UInt8 = 16
    public static let number: UInt8 = int | double

    /// Adds each key's type in encoded metadata to `masks`.
    public static func note(_ bytes: UnsafeRawBufferPointer, into masks: inout [String: UInt8]) {
        var reader = ByteReader(bytes)
        guard let count = try? reader.integer(UInt16.self) else { return }
        for _ in 0..<count {
            guard let keyLength = try? reader.integer(UInt16.self), let key = try? reader.bytes(Int(keyLength)),
                  reader.remaining > 0
            else { return }
            let type = bytes[reader.offset]
            guard (1...5).contains(type), (try? reader.skipValue()) != nil else { return }
            let bit = UInt8(1) << (type - 1)
            let name = String(decoding: key, as: UTF8.self)
            if masks[name, default: 0] & bit == 0 { masks[name, default: 0] |= bit }
        }
    }

    /// A readable list of the types in a mask ("text", "integers and decimals").
    public static func describe(_ mask: UInt8) -> String {
        var names: [String] = []
        if mask & string != 0 { names.append("text") }
        if mask & int != 0 { names.append("integers") }
        if mask & double != 0 { names.append("decimals") }
        if mask & bool != 0 { names.append("booleans") }
        if mask & sparseVector != 0 { names.append("sparse vectors") }
        return names.count <= 1 ? (names.first ?? "nothing") : names.dropLast().joined(separator: ", ") + " and " + (names.last ?? "")
    }
}

extension MetadataValue {
    /// This value's bit in `MetadataTypes` masks.
    public var typeBit: UInt8 { UInt8(1) << (typeCode - 1) }
}

extension WhereFilter {
    /// The first condition comparing a field with a type the collection's
    /// records never held under it (`masks` from `MetadataTypes.note`), as a
    /// message naming the field and what it holds; nil when every condition
    /// can match. Fields never seen, `#id`, and `$ne`/`$nin` (which match
    /// every record of another type) pass.
    public func typeProblem(_ masks: [String: UInt8]) -> String? {
        switch self {
        case .and(let children), .or(let children):
            for child in children { if let problem = child.typeProblem(masks) { return problem } }
            return nil
        case .compare(let key, let op, let value):
            guard let mask = masks[key], mask != 0 else { return nil }
            switch op {
            case .ne: return nil
            case .gt, .gte, .lt, .lte:
                guard mask & MetadataTypes.number == 0 else { return nil }
                return "'\(key)' holds \(MetadataTypes.describe(mask)), and \(op.rawValue) compares numbers"
            case .eq:
                return Self.mismatch(key, mask, [value])
            }
        case .membership(let key, let negated, let values):
            guard !negated, let mask = masks[key], mask != 0 else { return nil }
            return Self.mismatch(key, mask, values)
        }
    }

    private static func mismatch(_ key: String, _ mask: UInt8, _ values: [MetadataValue]) -> String? {
        // Numbers match numbers of either kind.
        let wanted = values.reduce(UInt8(0)) { $0 | ($1.number != nil ? MetadataTypes.number : $1.typeBit) }
        guard mask & wanted == 0, let first = values.first else { return nil }
        return "'\(key)' holds \(MetadataTypes.describe(mask)), never \(MetadataTypes.describe(first.number != nil ? MetadataTypes.number : first.typeBit)) like \(first)"
    }
}
