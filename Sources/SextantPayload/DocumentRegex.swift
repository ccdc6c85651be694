/// Regular expressions for `where_document`'s `$regex` and `$not_regex`,
/// matched in time linear in the document (a Pike VM over a Thompson NFA, as
/// RE2 and Rust's regex crate do, which Chroma uses): no pattern can make a
/// query backtrack for ever. The syntax is the common subset of Rust's:
/// literals, `.`, classes (`[a-z]`, `[^…]`, `\d \w \s` and their negations,
/// Unicode-aware), anchors `^ $`, groups `( )` and `(?: )`, alternation `|`,
/// quantifiers `* + ? {m} {m,} {m,n}` (lazy forms accepted; for a yes/no match
/// they are the same), and a leading `(?i)` for case-insensitive matching.
/// `.` does not match a newline; `^`/`$` anchor the whole document. A search
/// finds the pattern anywhere, as Chroma's does.
public struct DocumentRegex: Sendable, Hashable {
    public let pattern: String
    let program: [Instruction]
    let caseInsensitive: Bool
    /// Why the pattern was refused; reported by filter validation.
    public let error: String?

    public static let maximumPatternBytes = 1_024
    public static let maximumInstructions = 8_192
    public static let maximumRepetition = 1_000

    public static func == (lhs: DocumentRegex, rhs: DocumentRegex) -> Bool { lhs.pattern == rhs.pattern }
    public func hash(into hasher: inout Hasher) { hasher.combine(pattern) }

    enum Instruction: Sendable {
        case scalar(Unicode.Scalar)
        case any
        case set(ScalarSet)
        case split(Int, Int)
        case jump(Int)
        case lineStart
        case lineEnd
        case match
    }

    struct ScalarSet: Sendable {
        var ranges: [ClosedRange<UInt32>] = []
        var classes: [Class] = []
        var negated = false

        enum Class: Sendable { case digit, word, space, notDigit, notWord, notSpace }

        func contains(_ scalar: Unicode.Scalar) -> Bool {
            let value = scalar.value
            var found = ranges.contains { $0.contains(value) }
            if !found { found = classes.contains { $0.contains(scalar) } }
            return found != negated
        }
    }

    public init(_ pattern: String) {
        self.pattern = pattern
        var parser = Parser(Array(pattern.unicodeScalars))
        do throws(Parser.Failure) {
            guard pattern.utf8.count <= Self.maximumPatternBytes else {
                throw Parser.Failure("pattern exceeds \(Self.maximumPatternBytes) bytes")
            }
            let (program, insensitive) = try parser.compile()
            self.program = program
            caseInsensitive = insensitive
            error = nil
        } catch {
            program = [.match]
            caseInsensitive = false
            self.error = error.message
        }
    }

    /// Whether the pattern occurs anywhere in `document` (UTF-8).
    public func matches(_ document: UnsafeRawBufferPointer) -> Bool {
        guard error == nil else { return false }
        var current = ThreadList(capacity: program.count)
        var next = ThreadList(capacity: program.count)
        var scalars = UTF8Scalars(bytes: document)
        var atStart = true
        while true {
            let scalar = scalars.next()
            // A new attempt may start at every position: the search is unanchored.
            add(0, to: &current, atStart: atStart, atEnd: scalar == nil)
            if current.contains(where: { if case .match = program[$0] { return true } else { return false } }) { return true }
            guard let scalar else { return false }
            let folded = caseInsensitive ? Self.fold(scalar) : scalar
            next.clear()
            for pc in current.items {
                switch program[pc] {
                case .scalar(let expected): if expected == folded { add(pc + 1, to: &next, atStart: false, atEnd: scalars.isAtEnd) }
                case .any: if scalar != "\n" { add(pc + 1, to: &next, atStart: false, atEnd: scalars.isAtEnd) }
                case .set(let set):
                    if set.contains(scalar) || (caseInsensitive && set.contains(folded)) || (caseInsensitive && set.contains(Self.upper(scalar))) {
                        add(pc + 1, to: &next, atStart: false, atEnd: scalars.isAtEnd)
                    }
                default: break
                }
            }
            swap(&current, &next)
            atStart = false
        }
    }

    /// Follows jumps, splits and anchors from `pc`, adding the threads that wait for a scalar (or match).
    private func add(_ pc: Int, to list: inout ThreadList, atStart: Bool, atEnd: Bool) {
        var stack = [pc]
        while let pc = stack.popLast() {
            guard list.insert(pc) else { continue }
            switch program[pc] {
            case .jump(let target): stack.append(target)
            case .split(let first, let second):
                stack.append(second)
                stack.append(first)
            case .lineStart: if atStart { stack.append(pc + 1) }
            case .lineEnd: if atEnd { stack.append(pc + 1) }
            default: break
            }
        }
    }

    static func fold(_ scalar: Unicode.Scalar) -> Unicode.Scalar {
        let lowered = scalar.properties.lowercaseMapping.unicodeScalars
        return lowered.count == 1 ? lowered.first ?? scalar : scalar
    }

    static func upper(_ scalar: Unicode.Scalar) -> Unicode.Scalar {
        let raised = scalar.properties.uppercaseMapping.unicodeScalars
        return raised.count == 1 ? raised.first ?? scalar : scalar
    }

    /// A sparse set of program counters: O(1) insert and clear, items in insertion order.
    struct ThreadList {
        var items: [Int] = []
        var seen: [Bool]

        init(capacity: Int) { seen = Array(repeating: false, count: capacity) }

        mutating func insert(_ pc: Int) -> Bool {
            if seen[pc] { return false }
            seen[pc] = true
            items.append(pc)
            return true
        }

        mutating func clear() {
            for pc in items { seen[pc] = false }
            items.removeAll(keepingCapacity: true)
        }

        func contains(where predicate: (Int) -> Bool) -> Bool { items.contains(where: predicate) }
    }

    /// Unicode scalars decoded from UTF-8 (invalid bytes read as U+FFFD).
    struct UTF8Scalars {
        let bytes: UnsafeRawBufferPointer
        var index = 0

        var isAtEnd: Bool { index >= bytes.count }

        mutating func next() -> Unicode.Scalar? {
            guard index < bytes.count else { return nil }
            let lead = bytes[index]
            let length = lead < 0x80 ? 1 : lead >> 5 == 0b110 ? 2 : lead >> 4 == 0b1110 ? 3 : lead >> 3 == 0b11110 ? 4 : 1
            guard index + length <= bytes.count else {
                index = bytes.count
                return "\u{FFFD}"
            }
            var value: UInt32 = length == 1 ? UInt32(lead) : UInt32(lead) & (0xFF >> (length + 1))
            for offset in 1..<max(1, length) { value = value << 6 | UInt32(bytes[index + offset] & 0x3F) }
            index += length
            if length == 1 && lead >= 0x80 { return "\u{FFFD}" }
            return Unicode.Scalar(value) ?? "\u{FFFD}"
        }
    }

    struct Parser {
        struct Failure: Error {
            let message: String
            init(_ message: String) { self.message = message }
        }

        /// A fragment of program, built bottom-up and linked when concatenated.
        indirect enum Node {
            case scalar(Unicode.Scalar)
            case any
            case set(ScalarSet)
            case lineStart
            case lineEnd
            case empty
            case concat([Node])
            case alternation([Node])
            case repeated(Node, minimum: Int, maximum: Int?)
        }

        let scalars: [Unicode.Scalar]
        var position = 0
        var depth = 0

        init(_ scalars: [Unicode.Scalar]) { self.scalars = scalars }

        mutating func compile() throws(Failure) -> ([Instruction], Bool) {
            var insensitive = false
            if scalars.starts(with: Array("(?i)".unicodeScalars)) {
                insensitive = true
                position = 4
            }
            var node = try alternation()
            guard position == scalars.count else { throw Failure("unexpected '\(scalars[position])' at \(position)") }
            if insensitive { node = Self.folded(node) }
            var program: [Instruction] = []
            try emit(node, into: &program)
            program.append(.match)
            return (program, insensitive)
        }

        static func folded(_ node: Node) -> Node {
            switch node {
            case .scalar(let scalar): return .scalar(DocumentRegex.fold(scalar))
            case .concat(let nodes): return .concat(nodes.map(folded))
            case .alternation(let nodes): return .alternation(nodes.map(folded))
            case .repeated(let inner, let minimum, let maximum): return .repeated(folded(inner), minimum: minimum, maximum: maximum)
            default: return node
            }
        }

        var peek: Unicode.Scalar? { position < scalars.count ? scalars[position] : nil }

        mutating func alternation() throws(Failure) -> Node {
            var branches = [try concatenation()]
            while peek == "|" {
                position += 1
                branches.append(try concatenation())
            }
            return branches.count == 1 ? branches[0] : .alternation(branches)
        }

        mutating func concatenation() throws(Failure) -> Node {
            var items: [Node] = []
            while let scalar = peek, scalar != "|", scalar != ")" { items.append(try repetition()) }
            return items.isEmpty ? .empty : items.count == 1 ? items[0] : .concat(items)
        }

        mutating func repetition() throws(Failure) -> Node {
            var node = try atom()
            while let scalar = peek {
                var minimum = 0, maximum: Int? = nil
                switch scalar {
                case "*": position += 1
                case "+": position += 1; minimum = 1
                case "?": position += 1; maximum = 1
                case "{":
                    guard let bounds = try counted() else { return node }
                    (minimum, maximum) = bounds
                default: return node
                }
                if peek == "?" { position += 1 }  // lazy: the same for a yes/no match
                if case .lineStart = node { throw Failure("nothing to repeat before \(scalar)") }
                node = .repeated(node, minimum: minimum, maximum: maximum)
            }
            return node
        }

        /// `{m}`, `{m,}`, `{m,n}`; nil (and nothing consumed) when the brace is a literal.
        mutating func counted() throws(Failure) -> (Int, Int?)? {
            let start = position
            position += 1
            func number() -> Int? {
                var digits = ""
                while let scalar = peek, scalar.properties.numericType == .decimal, scalar.isASCII {
                    digits.unicodeScalars.append(scalar)
                    position += 1
                }
                return digits.isEmpty ? nil : Int(digits.prefix(6))
            }
            guard let minimum = number() else { position = start; return nil }
            var maximum: Int? = minimum
            if peek == "," {
                position += 1
                maximum = number()
            }
            guard peek == "}" else { position = start; return nil }
            position += 1
            guard minimum <= DocumentRegex.maximumRepetition, (maximum ?? minimum) <= DocumentRegex.maximumRepetition else {
                throw Failure("a repetition count exceeds \(DocumentRegex.maximumRepetition)")
            }
            if let maximum, maximum < minimum { throw Failure("repetition {\(minimum),\(maximum)} is empty") }
            return (minimum, maximum)
        }

        mutating func atom() throws(Failure) -> Node {
            guard let scalar = peek else { throw Failure("pattern ends early") }
            position += 1
            switch scalar {
            case ".": return .any
            case "^": return .lineStart
            case "$": return .lineEnd
            case "(":
                depth += 1
                guard depth <= 64 else { throw Failure("groups nested deeper than 64") }
                if scalars[position...].starts(with: Array("?:".unicodeScalars)) { position += 2 }
                else if peek == "?" { throw Failure("group flags other than a leading (?i) are not supported") }
                let inner = try alternation()
                guard peek == ")" else { throw Failure("unclosed group") }
                position += 1
                depth -= 1
                return inner
            case ")": throw Failure("unmatched ')'")
            case "[": return .set(try characterClass())
            case "\\": return try escape(inClass: false)
            case "*", "+", "?": throw Failure("nothing to repeat before '\(scalar)'")
            default: return .scalar(scalar)
            }
        }

        mutating func escape(inClass: Bool) throws(Failure) -> Node {
            guard let scalar = peek else { throw Failure("pattern ends with a backslash") }
            position += 1
            var set = ScalarSet()
            switch scalar {
            case "d": set.classes = [.digit]
            case "D": set.classes = [.notDigit]
            case "w": set.classes = [.word]
            case "W": set.classes = [.notWord]
            case "s": set.classes = [.space]
            case "S": set.classes = [.notSpace]
            case "n": return .scalar("\n")
            case "t": return .scalar("\t")
            case "r": return .scalar("\r")
            default:
                guard !scalar.properties.isAlphabetic && scalar.properties.numericType == nil else {
                    throw Failure("escape '\\\(scalar)' is not supported")
                }
                return .scalar(scalar)
            }
            return .set(set)
        }

        mutating func characterClass() throws(Failure) -> ScalarSet {
            var set = ScalarSet()
            if peek == "^" {
                set.negated = true
                position += 1
            }
            var first = true
            while let scalar = peek, scalar != "]" || first {
                first = false
                position += 1
                var low = scalar
                if scalar == "\\" {
                    switch try escape(inClass: true) {
                    case .scalar(let escaped): low = escaped
                    case .set(let inner):
                        set.classes += inner.classes
                        continue
                    default: throw Failure("unsupported escape in a class")
                    }
                }
                if peek == "-", position + 1 < scalars.count, scalars[position + 1] != "]" {
                    position += 1
                    guard var high = peek else { throw Failure("unclosed class") }
                    position += 1
                    if high == "\\" {
                        guard case .scalar(let escaped) = try escape(inClass: true) else { throw Failure("a class range needs a character") }
                        high = escaped
                    }
                    guard low.value <= high.value else { throw Failure("class range \(low)-\(high) is backwards") }
                    set.ranges.append(low.value...high.value)
                } else {
                    set.ranges.append(low.value...low.value)
                }
            }
            guard peek == "]" else { throw Failure("unclosed class") }
            position += 1
            return set
        }

        func emit(_ node: Node, into program: inout [Instruction]) throws(Failure) {
            guard program.count < DocumentRegex.maximumInstructions else {
                throw Failure("the pattern compiles to more than \(DocumentRegex.maximumInstructions) steps")
            }
            switch node {
            case .scalar(let scalar): program.append(.scalar(scalar))
            case .any: program.append(.any)
            case .set(let set): program.append(.set(set))
            case .lineStart: program.append(.lineStart)
            case .lineEnd: program.append(.lineEnd)
            case .empty: break
            case .concat(let nodes): for item in nodes { try emit(item, into: &program) }
            case .alternation(let branches):
                var jumps: [Int] = []
                for (index, branch) in branches.enumerated() {
                    if index < branches.count - 1 {
                        let split = program.count
                        program.append(.split(split + 1, -1))
                        try emit(branch, into: &program)
                        jumps.append(program.count)
                        program.append(.jump(-1))
                        program[split] = .split(split + 1, program.count)
                    } else {
                        try emit(branch, into: &program)
                    }
                }
                for jump in jumps { program[jump] = .jump(program.count) }
            case .repeated(let inner, let minimum, let maximum):
                for _ in 0..<minimum { try emit(inner, into: &program) }
                if let maximum {
                    // Each optional copy may be skipped to the end.
                    var splits: [Int] = []
                    for _ in minimum..<maximum {
                        splits.append(program.count)
                        program.append(.split(program.count + 1, -1))
                        try emit(inner, into: &program)
                    }
                    for split in splits { program[split] = .split(split + 1, program.count) }
                } else {
                    let loop = program.count
                    program.append(.split(loop + 1, -1))
                    try emit(inner, into: &program)
                    program.append(.jump(loop))
                    program[loop] = .split(loop + 1, program.count)
                }
            }
            guard program.count <= DocumentRegex.maximumInstructions else {
                throw Failure("the pattern compiles to more than \(DocumentRegex.maximumInstructions) steps")
            }
        }
    }
}

extension DocumentRegex.ScalarSet.Class {
    func contains(_ scalar: Unicode.Scalar) -> Bool {
        let properties = scalar.properties
        switch self {
        case .digit: return properties.numericType == .decimal
        case .notDigit: return properties.numericType != .decimal
        case .word: return Self.isWord(scalar)
        case .notWord: return !Self.isWord(scalar)
        case .space: return properties.isWhitespace
        case .notSpace: return !properties.isWhitespace
        }
    }

    static func isWord(_ scalar: Unicode.Scalar) -> Bool {
        let properties = scalar.properties
        return properties.isAlphabetic || properties.numericType == .decimal || properties.generalCategory == .connectorPunctuation
            || properties.generalCategory == .nonspacingMark || properties.generalCategory == .spacingMark
    }
}
