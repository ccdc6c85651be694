/// A reader for the Python pickles Chroma writes beside an HNSW segment
/// (`index_metadata.pickle`: the id ↔ label maps). It builds values only:
/// a class reference becomes a name, an instance becomes its state, and
/// nothing is ever called, so a hostile file can waste at most the bounds
/// below, never run code.
public indirect enum PickleValue: Sendable, Equatable {
    case none
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case bytes([UInt8])
    case list([PickleValue])
    case tuple([PickleValue])
    case dict([(PickleValue, PickleValue)])
    /// `module.name` of a class the pickle referred to.
    case global(String)
    /// An instance: its class and the state BUILD gave it.
    case object(String, PickleValue)

    public static func == (lhs: PickleValue, rhs: PickleValue) -> Bool {
        switch (lhs, rhs) {
        case (.none, .none): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.int(let a), .int(let b)): return a == b
        case (.double(let a), .double(let b)): return a == b
        case (.string(let a), .string(let b)): return a == b
        case (.bytes(let a), .bytes(let b)): return a == b
        case (.list(let a), .list(let b)), (.tuple(let a), .tuple(let b)): return a == b
        case (.dict(let a), .dict(let b)): return a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case (.global(let a), .global(let b)): return a == b
        case (.object(let a, let x), .object(let b, let y)): return a == b && x == y
        default: return false
        }
    }

    /// The entries of a dict, or of an instance whose state is a dict.
    public var entries: [(PickleValue, PickleValue)]? {
        switch self {
        case .dict(let entries): return entries
        case .object(_, let state): return state.entries
        default: return nil
        }
    }

    public subscript(key: String) -> PickleValue? {
        entries?.first { $0.0 == .string(key) }?.1
    }
}

public struct PickleError: Error, Sendable, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "pickle: \(message)" }
}

public enum Pickle {
    /// Bounds on what one pickle may build; Chroma's maps hold one entry per record.
    public static let maximumStackDepth = 1_000
    public static let maximumStackValues = 1 << 20
    public static let maximumStringBytes = 1 << 20
    public static let maximumContainerItems = 1 << 28

    public static func parse(_ bytes: [UInt8]) throws(PickleError) -> PickleValue {
        var reader = Reader(bytes: bytes)
        return try reader.run()
    }

    struct Reader {
        let bytes: [UInt8]
        var offset = 0
        var stack: [PickleValue] = []
        /// Where each MARK was set, as stack heights.
        var marks: [Int] = []
        var memo: [Int: PickleValue] = [:]

        init(bytes: [UInt8]) { self.bytes = bytes }

        mutating func byte() throws(PickleError) -> UInt8 {
            guard offset < bytes.count else { throw PickleError("truncated at byte \(offset)") }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func take(_ count: Int) throws(PickleError) -> ArraySlice<UInt8> {
            guard count >= 0, count <= bytes.count - offset else { throw PickleError("truncated: \(count) bytes wanted at \(offset)") }
            defer { offset += count }
            return bytes[offset..<(offset + count)]
        }

        mutating func littleEndian(_ count: Int) throws(PickleError) -> UInt64 {
            var value: UInt64 = 0
            for (shift, byte) in try take(count).enumerated() { value |= UInt64(byte) << (8 * UInt64(shift)) }
            return value
        }

        mutating func string(_ count: Int) throws(PickleError) -> PickleValue {
            guard count <= Pickle.maximumStringBytes else { throw PickleError("string of \(count) bytes exceeds \(Pickle.maximumStringBytes)") }
            let slice = try take(count)
            guard let text = String(validating: slice, as: UTF8.self) else { throw PickleError("string at \(offset - count) is not UTF-8") }
            return .string(text)
        }

        mutating func push(_ value: PickleValue) throws(PickleError) {
            guard stack.count < Pickle.maximumStackValues else { throw PickleError("stack exceeds its bound") }
            stack.append(value)
        }

        mutating func pop() throws(PickleError) -> PickleValue {
            guard let value = stack.popLast() else { throw PickleError("stack underflow at byte \(offset)") }
            if let mark = marks.last, stack.count < mark { throw PickleError("pop past a mark at byte \(offset)") }
            return value
        }

        /// The items pushed since the last MARK, which is removed.
        mutating func popToMark() throws(PickleError) -> [PickleValue] {
            guard let mark = marks.popLast(), mark <= stack.count else { throw PickleError("no mark at byte \(offset)") }
            let items = Array(stack[mark...])
            stack.removeSubrange(mark...)
            return items
        }

        mutating func replaceTop(_ transform: (PickleValue) throws(PickleError) -> PickleValue) throws(PickleError) {
            guard let top = stack.popLast() else { throw PickleError("stack underflow at byte \(offset)") }
            stack.append(try transform(top))
        }

        static func appending(_ container: PickleValue, _ items: [PickleValue]) throws(PickleError) -> PickleValue {
            guard case .list(var list) = container else { throw PickleError("APPEND to a non-list") }
            guard list.count + items.count <= Pickle.maximumContainerItems else { throw PickleError("list exceeds its bound") }
            list.append(contentsOf: items)
            return .list(list)
        }

        static func setting(_ container: PickleValue, _ items: [PickleValue]) throws(PickleError) -> PickleValue {
            guard items.count % 2 == 0 else { throw PickleError("SETITEMS with an odd number of items") }
            guard case .dict(var entries) = container else { throw PickleError("SETITEM on a non-dict") }
            guard entries.count + items.count / 2 <= Pickle.maximumContainerItems else { throw PickleError("dict exceeds its bound") }
            var index = 0
            while index < items.count {
                entries.append((items[index], items[index + 1]))
                index += 2
            }
            return .dict(entries)
        }

        mutating func run() throws(PickleError) -> PickleValue {
            while true {
                let opcode = try byte()
                switch opcode {
                case 0x80: _ = try byte()  // PROTO
                case 0x95: _ = try littleEndian(8)  // FRAME: a length hint only
                case 0x2E:  // STOP
                    guard stack.count == 1, marks.isEmpty else { throw PickleError("STOP with \(stack.count) values on the stack") }
                    return stack[0]
                case 0x28: marks.append(stack.count)  // MARK
                case 0x4E: try push(.none)
                case 0x88: try push(.bool(true))
                case 0x89: try push(.bool(false))
                case 0x4B: try push(.int(Int64(try byte())))  // BININT1
                case 0x4D: try push(.int(Int64(try littleEndian(2))))  // BININT2
                case 0x4A: try push(.int(Int64(Int32(truncatingIfNeeded: try littleEndian(4)))))  // BININT
                case 0x8A:  // LONG1: little-endian two's complement
                    let count = Int(try byte())
                    guard count <= 8 else { throw PickleError("integer of \(count) bytes exceeds 64 bits") }
                    let raw = try littleEndian(count)
                    let value = count == 0 ? 0 : Int64(bitPattern: raw << UInt64(64 - 8 * count)) >> Int64(64 - 8 * count)
                    try push(.int(value))
                case 0x47: try push(.double(Double(bitPattern: UInt64(bigEndian: try littleEndian(8)))))  // BINFLOAT, big-endian
                case 0x58: try push(try string(Int(try littleEndian(4))))  // BINUNICODE
                case 0x8C: try push(try string(Int(try byte())))  // SHORT_BINUNICODE
                case 0x8D:  // BINUNICODE8
                    let count = try littleEndian(8)
                    guard count <= UInt64(Pickle.maximumStringBytes) else { throw PickleError("string exceeds its bound") }
                    try push(try string(Int(count)))
                case 0x43: try push(.bytes(Array(try take(Int(try byte())))))  // SHORT_BINBYTES
                case 0x42:  // BINBYTES
                    let count = Int(try littleEndian(4))
                    guard count <= Pickle.maximumStringBytes else { throw PickleError("bytes exceed their bound") }
                    try push(.bytes(Array(try take(count))))
                case 0x5D: try push(.list([]))  // EMPTY_LIST
                case 0x7D: try push(.dict([]))  // EMPTY_DICT
                case 0x29: try push(.tuple([]))  // EMPTY_TUPLE
                case 0x8F: try push(.list([]))  // EMPTY_SET, kept as a list
                case 0x6C: try push(.list(try popToMark()))  // LIST
                case 0x74: try push(.tuple(try popToMark()))  // TUPLE
                case 0x64:  // DICT
                    let items = try popToMark()
                    try push(try Self.setting(.dict([]), items))
                case 0x85: let a = try pop(); try push(.tuple([a]))
                case 0x86: let b = try pop(); let a = try pop(); try push(.tuple([a, b]))
                case 0x87: let c = try pop(); let b = try pop(); let a = try pop(); try push(.tuple([a, b, c]))
                case 0x61:  // APPEND
                    let item = try pop()
                    try replaceTop { (top) throws(PickleError) in try Self.appending(top, [item]) }
                case 0x65, 0x90:  // APPENDS, ADDITEMS
                    let items = try popToMark()
                    try replaceTop { (top) throws(PickleError) in try Self.appending(top, items) }
                case 0x73:  // SETITEM
                    let value = try pop()
                    let key = try pop()
                    try replaceTop { (top) throws(PickleError) in try Self.setting(top, [key, value]) }
                case 0x75:  // SETITEMS
                    let items = try popToMark()
                    try replaceTop { (top) throws(PickleError) in try Self.setting(top, items) }
                case 0x94: guard let top = stack.last else { throw PickleError("MEMOIZE on an empty stack") }; memo[memo.count] = top
                case 0x71: guard let top = stack.last else { throw PickleError("BINPUT on an empty stack") }; memo[Int(try byte())] = top
                case 0x72: guard let top = stack.last else { throw PickleError("LONG_BINPUT on an empty stack") }; memo[Int(try littleEndian(4))] = top
                case 0x68, 0x6A:  // BINGET, LONG_BINGET
                    let key = opcode == 0x68 ? Int(try byte()) : Int(try littleEndian(4))
                    guard let value = memo[key] else { throw PickleError("memo \(key) is not set") }
                    try push(value)
                case 0x63:  // GLOBAL: "module\nname\n"
                    try push(.global("\(try line()).\(try line())"))
                case 0x93:  // STACK_GLOBAL
                    let name = try pop()
                    let module = try pop()
                    guard case .string(let n) = name, case .string(let m) = module else { throw PickleError("STACK_GLOBAL needs two strings") }
                    try push(.global("\(m).\(n)"))
                case 0x81, 0x52:  // NEWOBJ, REDUCE: an instance whose state comes later; never called
                    _ = try pop()
                    let callable = try pop()
                    guard case .global(let name) = callable else { throw PickleError("instance of something other than a class") }
                    try push(.object(name, .none))
                case 0x62:  // BUILD
                    let state = try pop()
                    try replaceTop { (top) throws(PickleError) in
                        guard case .object(let name, _) = top else { throw PickleError("BUILD on a non-instance") }
                        return .object(name, state)
                    }
                case 0x30: _ = try pop()  // POP
                case 0x31: _ = try popToMark()  // POP_MARK
                case 0x32: guard let top = stack.last else { throw PickleError("DUP on an empty stack") }; try push(top)
                default:
                    throw PickleError("unsupported opcode 0x\(String(opcode, radix: 16)) at byte \(offset - 1)")
                }
                if marks.count > Pickle.maximumStackDepth { throw PickleError("marks nested deeper than \(Pickle.maximumStackDepth)") }
            }
        }

        mutating func line() throws(PickleError) -> String {
            let start = offset
            while try byte() != 0x0A {
                if offset - start > 1_024 { throw PickleError("GLOBAL name longer than 1,024 bytes") }
            }
            return String(decoding: bytes[start..<(offset - 1)], as: UTF8.self)
        }
    }
}
