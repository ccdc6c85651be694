/// Exact indexes over declared metadata fields, so that a filter's matching
/// records and their number are known without reading a record: strings and
/// booleans by posting lists (slot lists sorted by slot), numbers by an
/// ordered list of (value, slot). Ints and floats share the ordered list and
/// compare by value, as filters do.
///
/// The ordered list is a sorted run plus a small unsorted run of recent
/// entries; the recent run is merged in once it passes a sixteenth of the
/// sorted one, so a write costs a few moves amortised, not a shift of the
/// whole list. Removed or replaced entries stay in the lists until the next
/// merge or compaction and are skipped by checking the slot's current value.
public struct PayloadIndex: Sendable {
    /// One field's index.
    public struct Field: Sendable {
        enum Key: Hashable, Sendable {
            case string(String)
            case number(Double)
            case bool(Bool)

            init?(_ value: MetadataValue) {
                switch value {
                case .string(let text): self = .string(text)
                case .int(let number): self = .number(Double(number))
                case .double(let number): self = .number(number)
                case .bool(let flag): self = .bool(flag)
                case .sparseVector: return nil
                }
            }
        }

        /// Slot → its value's key (nil: no value); the truth the lists are checked against.
        var keyOfSlot: [Key?] = []
        /// Strings and booleans: key → slots, sorted after `compact`.
        var postings: [Key: [UInt32]] = [:]
        var dirty: Set<Key> = []
        /// Numbers: (value, slot) sorted, and recent entries unsorted.
        var ordered: [NumberEntry] = []
        var recent: [NumberEntry] = []
        /// Number entries whose slot no longer holds that value (dropped at
        /// the next merge); while there are none, ranges skip the check.
        var staleNumbers = 0
        /// Slots holding a value of the field.
        public private(set) var count = 0
        /// Slots per distinct string or boolean key (live counts, for facets).
        var keyCounts: [Key: Int] = [:]

        struct NumberEntry: Sendable, Comparable {
            var value: Double
            var slot: UInt32
            static func < (a: NumberEntry, b: NumberEntry) -> Bool { a.value < b.value || (a.value == b.value && a.slot < b.slot) }
        }

        mutating func set(slot: UInt32, _ value: MetadataValue?) {
            let index = Int(slot)
            if keyOfSlot.count <= index { keyOfSlot.append(contentsOf: repeatElement(nil, count: index + 1 - keyOfSlot.count)) }
            let key = value.flatMap(Key.init)
            let old = keyOfSlot[index]
            guard old != key else { return }
            if let old {
                count -= 1
                switch old {
                case .number: staleNumbers += 1  // its entry is skipped, then dropped at the next merge
                case .string, .bool:
                    keyCounts[old, default: 1] -= 1
                    if keyCounts[old] == 0 { keyCounts[old] = nil }
                    dirty.insert(old)
                }
            }
            keyOfSlot[index] = key
            guard let key else { return }
            count += 1
            switch key {
            case .number(let number):
                recent.append(NumberEntry(value: number, slot: slot))
                if recent.count > max(1_024, ordered.count / 16) { merge() }
            case .string, .bool:
                keyCounts[key, default: 0] += 1
                if let last = postings[key]?.last, last >= slot { dirty.insert(key) }
                postings[key, default: []].append(slot)
            }
            assert(count >= 0, "counts stay non-negative")
        }

        private func holds(_ slot: UInt32, _ key: Key) -> Bool {
            Int(slot) < keyOfSlot.count && keyOfSlot[Int(slot)] == key
        }

        mutating func merge() {
            recent.sort()
            var merged: [NumberEntry] = []
            merged.reserveCapacity(ordered.count + recent.count)
            var left = 0
            var right = 0
            func keep(_ entry: NumberEntry) {
                // Skip stale entries and a slot's duplicate (the same value set twice).
                guard holds(entry.slot, .number(entry.value)), merged.last != entry else { return }
                merged.append(entry)
            }
            while left < ordered.count || right < recent.count {
                if right == recent.count || (left < ordered.count && ordered[left] < recent[right]) {
                    keep(ordered[left])
                    left += 1
                } else {
                    keep(recent[right])
                    right += 1
                }
            }
            ordered = merged
            recent.removeAll(keepingCapacity: true)
            staleNumbers = 0
        }

        /// Sorts appended lists and drops stale entries.
        mutating func compact() {
            for key in dirty {
                guard var slots = postings[key] else { continue }
                slots.sort()
                var kept: [UInt32] = []
                kept.reserveCapacity(keyCounts[key] ?? 0)
                for slot in slots where holds(slot, key) && kept.last != slot { kept.append(slot) }
                postings[key] = kept.isEmpty ? nil : kept
            }
            dirty.removeAll()
        }

        /// How many entries lie in the range: by two binary searches over the
        /// sorted run and a pass over the recent one. An upper bound until
        /// the next merge drops replaced values; exact after it.
        func count(_ range: NumberRange) -> Int {
            let start = range.firstAbove(ordered)
            let end = max(start, range.firstPast(ordered))
            return end - start + recent.reduce(0) { $0 + (range.contains($1.value) ? 1 : 0) }
        }

        func count(equal key: Key) -> Int {
            switch key {
            case .number(let number): return count(NumberRange(equal: number))
            case .string, .bool: return keyCounts[key] ?? 0
            }
        }

        /// Slots whose value equals `key`, sorted.
        func slots(equal key: Key) -> [UInt32] {
            switch key {
            case .number(let number): return slots(NumberRange(equal: number))
            case .string, .bool:
                precondition(dirty.isEmpty, "compact after writing, before reading")
                return postings[key] ?? []
            }
        }

        /// Slots with a number in the range (nil bounds are open), sorted.
        func slots(_ range: NumberRange) -> [UInt32] {
            let low = range.firstAbove(ordered)
            var result: [UInt32] = []
            var position = low
            // Without stale entries every entry is current: no read of the slot's key (a cache miss each).
            let check = staleNumbers > 0
            while position < ordered.count, range.belowUpper(ordered[position].value) {
                let entry = ordered[position]
                if !check || holds(entry.slot, .number(entry.value)) { result.append(entry.slot) }
                position += 1
            }
            for entry in recent where range.contains(entry.value) && (!check || holds(entry.slot, .number(entry.value))) {
                result.append(entry.slot)
            }
            return Self.sortedUnique(result, slotLimit: keyOfSlot.count)
        }

        /// Slots in order without repeats (a slot set twice to one value has two
        /// entries until the next merge). Many slots go through a bitmap of all
        /// slots, which puts them in order in one pass, not a sort.
        static func sortedUnique(_ slots: [UInt32], slotLimit: Int) -> [UInt32] {
            if slots.count < 4_096 || slots.count < slotLimit / 64 {
                var sorted = slots
                sorted.sort()
                var unique: [UInt32] = []
                unique.reserveCapacity(sorted.count)
                for slot in sorted where unique.last != slot { unique.append(slot) }
                return unique
            }
            var words = [UInt64](repeating: 0, count: (slotLimit + 63) / 64)
            for slot in slots { words[Int(slot) >> 6] |= 1 << (UInt64(slot) & 63) }
            var unique: [UInt32] = []
            unique.reserveCapacity(slots.count)
            for (index, word) in words.enumerated() where word != 0 {
                var bits = word
                while bits != 0 {
                    unique.append(UInt32(index << 6 + bits.trailingZeroBitCount))
                    bits &= bits - 1
                }
            }
            return unique
        }
    }

    public private(set) var fields: [String: Field] = [:]

    /// A range of numbers with open or closed ends, as one filter condition gives it.
    struct NumberRange {
        var lower: Double?
        var lowerInclusive = false
        var upper: Double?
        var upperInclusive = false

        init(equal value: Double) {
            (lower, lowerInclusive, upper, upperInclusive) = (value, true, value, true)
        }

        init(_ op: WhereFilter.Comparison, _ bound: Double) {
            switch op {
            case .gt: (lower, lowerInclusive) = (bound, false)
            case .gte: (lower, lowerInclusive) = (bound, true)
            case .lt: (upper, upperInclusive) = (bound, false)
            case .lte: (upper, upperInclusive) = (bound, true)
            case .eq, .ne: (lower, lowerInclusive, upper, upperInclusive) = (bound, true, bound, true)
            }
        }

        func aboveLower(_ value: Double) -> Bool {
            guard let lower else { return true }
            return lowerInclusive ? value >= lower : value > lower
        }

        func belowUpper(_ value: Double) -> Bool {
            guard let upper else { return true }
            return upperInclusive ? value <= upper : value < upper
        }

        func contains(_ value: Double) -> Bool { aboveLower(value) && belowUpper(value) }

        /// The first entry of a sorted run within the lower end, by binary search.
        func firstAbove(_ run: [Field.NumberEntry]) -> Int { Self.first(in: run) { aboveLower($0) } }

        /// The first entry of a sorted run past the upper end.
        func firstPast(_ run: [Field.NumberEntry]) -> Int { Self.first(in: run) { !belowUpper($0) } }

        /// The first index where `condition` holds, for a condition false then true along the run.
        private static func first(in run: [Field.NumberEntry], where condition: (Double) -> Bool) -> Int {
            var low = 0
            var high = run.count
            while low < high {
                let middle = (low + high) / 2
                if condition(run[middle].value) { high = middle } else { low = middle + 1 }
            }
            return low
        }
    }

    public init(fields names: [String]) {
        for name in names { fields[name] = Field() }
    }

    public var fieldNames: [String] { fields.keys.sorted() }

    /// Records the slot's metadata (encoded, see `MetadataCodec`), nil when the slot no longer holds a record.
    public mutating func set(slot: UInt32, metadata: UnsafeRawBufferPointer?) {
        for name in Array(fields.keys) {
            let value = metadata.flatMap { MetadataCodec.value(of: name, in: $0) }
            fields[name]?.set(slot: slot, value)
        }
    }

    public mutating func compact() {
        for name in Array(fields.keys) { fields[name]?.compact() }
    }

    /// Approximate bytes held (the per-slot keys, lists and ordered entries).
    public var memoryBytes: Int {
        fields.values.reduce(0) { total, field in
            total + field.keyOfSlot.count * 24 + (field.ordered.count + field.recent.count) * 16
                + field.postings.values.reduce(0) { $0 + $1.count * 4 + 64 }
        }
    }

    /// The slots a filter can match, sorted, when the indexes can tell:
    /// `exact` when they are exactly the matches (up to records retired
    /// meanwhile), otherwise a superset (a conjunct on an unindexed field, or
    /// `$ne` / `$nin`, was left to the record check). Nil: no index helps.
    public func candidates(_ filter: WhereFilter) -> (slots: [UInt32], exact: Bool)? {
        switch filter {
        case .and(let children):
            var result: [UInt32]?
            var exact = true
            for child in children {
                guard let (slots, childExact) = candidates(child) else {
                    exact = false
                    continue
                }
                exact = exact && childExact
                result = result.map { Self.intersect($0, slots) } ?? slots
            }
            return result.map { ($0, exact) }
        case .or(let children):
            var result: [UInt32] = []
            var exact = true
            for child in children {
                guard let (slots, childExact) = candidates(child) else { return nil }
                exact = exact && childExact
                result = Self.union(result, slots)
            }
            return (result, exact)
        case .compare(let key, let op, let value):
            guard let field = fields[key], let indexKey = Field.Key(value) else { return nil }
            switch op {
            case .eq: return (field.slots(equal: indexKey), true)
            case .ne: return nil
            case .gt, .gte, .lt, .lte:
                guard case .number(let bound) = indexKey else { return ([], true) }  // ranges match numbers only
                return (field.slots(NumberRange(op, bound)), true)
            }
        case .membership(let key, let negated, let values):
            guard !negated, let field = fields[key] else { return nil }
            var result: [UInt32] = []
            for value in values {
                guard let indexKey = Field.Key(value) else { continue }
                result = Self.union(result, field.slots(equal: indexKey))
            }
            return (result, true)
        }
    }

    /// How many slots the filter can match, without listing them: exact for
    /// one condition, an upper bound for `$and` (the smallest conjunct) and
    /// `$or` (the sum). Nil where `candidates` is nil.
    public func matchCount(_ filter: WhereFilter) -> Int? {
        switch filter {
        case .and(let children):
            let counts = children.compactMap(matchCount)
            return counts.min()
        case .or(let children):
            var total = 0
            for child in children {
                guard let count = matchCount(child) else { return nil }
                total += count
            }
            return total
        case .compare(let key, let op, let value):
            guard let field = fields[key], let indexKey = Field.Key(value) else { return nil }
            switch op {
            case .eq: return field.count(equal: indexKey)
            case .ne: return nil
            case .gt, .gte, .lt, .lte:
                guard case .number(let bound) = indexKey else { return 0 }
                return field.count(NumberRange(op, bound))
            }
        case .membership(let key, let negated, let values):
            guard !negated, let field = fields[key] else { return nil }
            return values.reduce(0) { total, value in total + (Field.Key(value).map(field.count(equal:)) ?? 0) }
        }
    }

    /// The most common values of a string or boolean field among `slots`
    /// (every record holding the field when nil), most first, ties by value.
    public func facet(_ name: String, among slots: [UInt32]?, limit: Int) -> [(value: MetadataValue, count: Int)]? {
        guard let field = fields[name] else { return nil }
        var counts: [Field.Key: Int] = [:]
        if let slots {
            for slot in slots where Int(slot) < field.keyOfSlot.count {
                if let key = field.keyOfSlot[Int(slot)] { counts[key, default: 0] += 1 }
            }
        } else {
            counts = field.keyCounts
        }
        let values = counts.compactMap { key, count -> (value: MetadataValue, count: Int)? in
            switch key {
            case .string(let text): return (.string(text), count)
            case .bool(let flag): return (.bool(flag), count)
            case .number: return nil
            }
        }
        return Array(values.sorted { $0.count > $1.count || ($0.count == $1.count && $0.value.description < $1.value.description) }
            .prefix(limit))
    }

    /// The smallest and largest number a field holds among `slots` (every record when nil).
    public func numberRange(_ name: String, among slots: [UInt32]?) -> (minimum: Double, maximum: Double, count: Int)? {
        guard let field = fields[name] else { return nil }
        var minimum = Double.infinity
        var maximum = -Double.infinity
        var count = 0
        func note(_ key: Field.Key?) {
            guard case .number(let number)? = key else { return }
            minimum = min(minimum, number)
            maximum = max(maximum, number)
            count += 1
        }
        if let slots {
            for slot in slots where Int(slot) < field.keyOfSlot.count { note(field.keyOfSlot[Int(slot)]) }
        } else {
            for key in field.keyOfSlot { note(key) }
        }
        return count == 0 ? nil : (minimum, maximum, count)
    }

    static func intersect(_ a: [UInt32], _ b: [UInt32]) -> [UInt32] {
        var result: [UInt32] = []
        result.reserveCapacity(min(a.count, b.count))
        var i = 0
        var j = 0
        while i < a.count, j < b.count {
            if a[i] == b[j] {
                result.append(a[i])
                i += 1
                j += 1
            } else if a[i] < b[j] {
                i += 1
            } else {
                j += 1
            }
        }
        return result
    }

    static func union(_ a: [UInt32], _ b: [UInt32]) -> [UInt32] {
        if a.isEmpty { return b }
        if b.isEmpty { return a }
        var result: [UInt32] = []
        result.reserveCapacity(a.count + b.count)
        var i = 0
        var j = 0
        while i < a.count || j < b.count {
            if j == b.count || (i < a.count && a[i] < b[j]) {
                result.append(a[i])
                i += 1
            } else if i == a.count || b[j] < a[i] {
                result.append(b[j])
                j += 1
            } else {
                result.append(a[i])
                i += 1
                j += 1
            }
        }
        return result
    }
}
