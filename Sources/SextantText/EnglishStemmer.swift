/// The Snowball English ("Porter2") stemmer, as Snowball 3.1 defines it
/// (english.sbl; the `snowballstemmer` package chromadb-client's `chroma_bm25`
/// uses), so that tokens stemmed here match the sparse vectors that client
/// computes. Written from the algorithm's definition; checked word for word
/// against `snowballstemmer` on every token of the debian-minilm documents
/// (SextantTextTests).
///
/// Works on Unicode scalars, as Python strings do: a letter outside a-z is a
/// consonant, and lengths count code points.
public enum EnglishStemmer {
    public static func stem(_ word: String) -> String {
        if let exception = exceptions[word] { return exception ?? word }
        var w = Array(word.unicodeScalars)
        guard w.count >= 3 else { return word }

        // Prelude: a leading apostrophe goes; a 'y' that acts as a consonant
        // (first letter, or after a vowel) becomes 'Y' until the postlude.
        if w.first == "'" { w.removeFirst() }
        var foundY = false
        if w.first == "y" {
            w[0] = "Y"
            foundY = true
        }
        if w.count > 1 {
            for index in 1..<w.count where w[index] == "y" && isVowel(w[index - 1]) {
                w[index] = "Y"
                foundY = true
            }
        }

        let (p1, p2) = regions(w)
        step1a(&w)
        step1b(&w, p1)
        step1c(&w)
        step2(&w, p1)
        step3(&w, p1, p2)
        step4(&w, p2)
        step5(&w, p1, p2)
        if foundY {
            for index in w.indices where w[index] == "Y" { w[index] = "y" }
        }
        return String(String.UnicodeScalarView(w))
    }

    // MARK: - Letters and regions

    private static func isVowel(_ c: Unicode.Scalar) -> Bool {
        c == "a" || c == "e" || c == "i" || c == "o" || c == "u" || c == "y"
    }

    /// Not a vowel, and not w, x or Y: the last letter of a short syllable.
    private static func isShortSyllableEnd(_ c: Unicode.Scalar) -> Bool {
        !isVowel(c) && c != "w" && c != "x" && c != "Y"
    }

    private static func isValidLIEnding(_ c: Unicode.Scalar) -> Bool {
        "cdeghkmnrt".unicodeScalars.contains(c)
    }

    /// R1 starts after the first non-vowel that follows a vowel (or after one
    /// of the listed prefixes); R2 likewise within R1. Positions are indices
    /// into the word; the word only ever changes after them.
    private static func regions(_ w: [Unicode.Scalar]) -> (Int, Int) {
        let n = w.count
        func afterVowelThenConsonant(from start: Int) -> Int? {
            var index = start
            while index < n, !isVowel(w[index]) { index += 1 }
            guard index < n else { return nil }
            index += 1
            while index < n, isVowel(w[index]) { index += 1 }
            guard index < n else { return nil }
            return index + 1
        }
        var p1: Int
        if let prefix = longestPrefix(w, in: regionPrefixes) {
            p1 = prefix
        } else if let found = afterVowelThenConsonant(from: 0) {
            p1 = found
        } else {
            return (n, n)
        }
        let p2 = afterVowelThenConsonant(from: p1) ?? n
        p1 = min(p1, n)
        return (p1, p2)
    }

    private static let regionPrefixes = ["arsen", "commun", "emerg", "gener", "inter", "later", "organ", "past", "univers"]
        .map { Array($0.unicodeScalars) }

    /// A short syllable ends the word up to `end`: consonant-vowel-consonant
    /// (the last not w, x or Y), or vowel-consonant as the whole word, or "past".
    private static func endsWithShortSyllable(_ w: [Unicode.Scalar], _ end: Int) -> Bool {
        if end >= 3, isShortSyllableEnd(w[end - 1]), isVowel(w[end - 2]), !isVowel(w[end - 3]) { return true }
        if end == 2, !isVowel(w[1]), isVowel(w[0]) { return true }
        return hasSuffix(w, past, end: end)
    }

    private static let past = Array("past".unicodeScalars)

    // MARK: - Suffix matching

    private static func hasSuffix(_ w: [Unicode.Scalar], _ suffix: String, end: Int? = nil) -> Bool {
        hasSuffix(w, Array(suffix.unicodeScalars), end: end ?? w.count)
    }

    private static func hasSuffix(_ w: [Unicode.Scalar], _ tail: [Unicode.Scalar], end stop: Int) -> Bool {
        guard stop >= tail.count else { return false }
        var index = 0
        while index < tail.count {
            if w[stop - tail.count + index] != tail[index] { return false }
            index += 1
        }
        return true
    }

    /// A step's suffixes, longest first, with their scalars made once.
    struct Suffixes: Sendable {
        let entries: [(text: String, scalars: [Unicode.Scalar])]
        init(_ texts: [String]) {
            entries = texts.map { ($0, Array($0.unicodeScalars)) }.sorted { $0.1.count > $1.1.count }
        }
    }

    /// The longest of `suffixes` the word ends with (as Snowball's `among`
    /// does: the longest match decides, shorter ones are not tried after it).
    private static func longestSuffix(_ w: [Unicode.Scalar], _ suffixes: Suffixes) -> String? {
        for entry in suffixes.entries where hasSuffix(w, entry.scalars, end: w.count) { return entry.text }
        return nil
    }

    private static func longestPrefix(_ w: [Unicode.Scalar], in prefixes: [[Unicode.Scalar]]) -> Int? {
        var best: Int?
        for prefix in prefixes where w.count >= prefix.count && w[0..<prefix.count].elementsEqual(prefix) {
            best = max(best ?? 0, prefix.count)
        }
        return best
    }

    private static func replaceSuffix(_ w: inout [Unicode.Scalar], _ length: Int, with replacement: String) {
        w.removeLast(length)
        w.append(contentsOf: replacement.unicodeScalars)
    }

    private static func length(_ text: String) -> Int { text.unicodeScalars.count }

    // MARK: - Steps

    private static func step1a(_ w: inout [Unicode.Scalar]) {
        if let apostrophe = longestSuffix(w, apostropheSuffixes) { w.removeLast(length(apostrophe)) }
        guard let suffix = longestSuffix(w, step1aSuffixes) else { return }
        let start = w.count - length(suffix)
        switch suffix {
        case "sses":
            replaceSuffix(&w, 4, with: "ss")
        case "ied", "ies":
            replaceSuffix(&w, 3, with: start >= 2 ? "i" : "ie")
        case "s":
            // Delete if the word before the letter preceding the s holds a vowel.
            guard start >= 1 else { return }
            if w[0..<(start - 1)].contains(where: isVowel) { w.removeLast() }
        default:
            return  // "ss", "us": kept
        }
    }

    private static func step1b(_ w: inout [Unicode.Scalar], _ p1: Int) {
        let suffix = longestSuffix(w, step1bSuffixes) ?? ""
        let start = w.count - length(suffix)
        switch suffix {
        case "":
            return
        case "eed", "eedly":
            guard start >= p1 else { return }
            let stem = Array(w[0..<start])
            if ["succ", "proc", "exc"].contains(where: { stem.elementsEqual($0.unicodeScalars) }) { return }
            replaceSuffix(&w, length(suffix), with: "ee")
            return
        case "ing":
            let stem = Array(w[0..<start])
            if ["even", "cann", "inn", "earr", "herr", "out"].contains(where: { stem.elementsEqual($0.unicodeScalars) }) { return }
            if stem.count == 2, stem[1] == "y", !isVowel(stem[0]) {
                // A consonant and y before -ing: dying, lying are exceptions; "kying" → "kie".
                w.removeLast(4)
                w.append(contentsOf: "ie".unicodeScalars)
                return
            }
        default:
            break  // "ed", "edly", "ingly"
        }
        // The general rule: delete the suffix if the stem before it holds a vowel, then tidy the end.
        guard w[0..<start].contains(where: isVowel) else { return }
        w.removeLast(w.count - start)
        if let ending = longestSuffix(w, step1bEndings) {
            if ending == "bl" || ending == "at" || ending == "iz" {
                w.append("e")
                return
            }
            // A double: kept when it follows a, e or o that begins the word ("add", "egg", "off"), else undoubled.
            let doubleStart = w.count - 2
            if doubleStart == 1, "aeo".unicodeScalars.contains(w[0]) { return }
            w.removeLast()
            return
        }
        if w.count == p1, endsWithShortSyllable(w, w.count) { w.append("e") }
    }

    private static func step1c(_ w: inout [Unicode.Scalar]) {
        let n = w.count
        guard n >= 3, w[n - 1] == "y" || w[n - 1] == "Y", !isVowel(w[n - 2]) else { return }
        w[n - 1] = "i"
    }

    private static let step2Suffixes: [(String, String?)] = [
        ("anci", "ance"), ("enci", "ence"), ("ogi", nil), ("li", nil), ("bli", "ble"), ("abli", "able"), ("alli", "al"),
        ("fulli", "ful"), ("lessli", "less"), ("ousli", "ous"), ("entli", "ent"), ("aliti", "al"), ("biliti", "ble"),
        ("iviti", "ive"), ("tional", "tion"), ("ational", "ate"), ("alism", "al"), ("ation", "ate"), ("ization", "ize"),
        ("izer", "ize"), ("ator", "ate"), ("iveness", "ive"), ("fulness", "ful"), ("ousness", "ous"), ("ogist", "og"),
    ]

    private static let apostropheSuffixes = Suffixes(["'", "'s'", "'s"])
    private static let step1aSuffixes = Suffixes(["ied", "s", "ies", "sses", "ss", "us"])
    private static let step1bSuffixes = Suffixes(["ed", "eed", "ing", "edly", "eedly", "ingly"])
    private static let step1bEndings = Suffixes(["bb", "dd", "ff", "gg", "bl", "mm", "nn", "pp", "rr", "at", "tt", "iz"])
    private static let step2Table = Suffixes(step2Suffixes.map(\.0))
    private static let step2Replacements = Dictionary(uniqueKeysWithValues: step2Suffixes)
    private static let step3Replacements = ["icate": "ic", "ative": "", "alize": "al", "iciti": "ic", "ical": "ic", "tional": "tion",
                                            "ational": "ate", "ful": "", "ness": ""]
    private static let step3Table = Suffixes(Array(step3Replacements.keys))
    private static let step4Suffixes = Suffixes(["ic", "ance", "ence", "able", "ible", "ate", "ive", "ize", "iti", "al", "ism", "ion",
                                                 "er", "ous", "ant", "ent", "ment", "ement"])

    private static func step2(_ w: inout [Unicode.Scalar], _ p1: Int) {
        guard let suffix = longestSuffix(w, step2Table) else { return }
        let start = w.count - length(suffix)
        guard start >= p1 else { return }
        switch suffix {
        case "ogi":
            guard start >= 1, w[start - 1] == "l" else { return }
            replaceSuffix(&w, 3, with: "og")
        case "li":
            guard start >= 1, isValidLIEnding(w[start - 1]) else { return }
            w.removeLast(2)
        default:
            guard let replacement = step2Replacements[suffix] ?? nil else { return }
            replaceSuffix(&w, length(suffix), with: replacement)
        }
    }

    private static func step3(_ w: inout [Unicode.Scalar], _ p1: Int, _ p2: Int) {
        guard let suffix = longestSuffix(w, step3Table), let replacement = step3Replacements[suffix] else { return }
        let start = w.count - length(suffix)
        guard start >= p1 else { return }
        if suffix == "ative", start < p2 { return }
        replaceSuffix(&w, length(suffix), with: replacement)
    }

    private static func step4(_ w: inout [Unicode.Scalar], _ p2: Int) {
        guard let suffix = longestSuffix(w, step4Suffixes) else { return }
        let start = w.count - length(suffix)
        guard start >= p2 else { return }
        if suffix == "ion" {
            guard start >= 1, w[start - 1] == "s" || w[start - 1] == "t" else { return }
        }
        w.removeLast(length(suffix))
    }

    private static func step5(_ w: inout [Unicode.Scalar], _ p1: Int, _ p2: Int) {
        guard let last = w.last else { return }
        let start = w.count - 1
        if last == "e" {
            if start >= p2 || (start >= p1 && !endsWithShortSyllable(w, start)) { w.removeLast() }
        } else if last == "l" {
            if start >= p2, start >= 1, w[start - 1] == "l" { w.removeLast() }
        }
    }

    /// Whole words with fixed stems (nil: the word is its own stem).
    private static let exceptions: [String: String?] = [
        "skis": "ski", "skies": "sky", "idly": "idl", "gently": "gentl", "ugly": "ugli", "early": "earli", "only": "onli",
        "singly": "singl", "sky": nil, "news": nil, "howe": nil, "atlas": nil, "cosmos": nil, "bias": nil, "andes": nil,
    ]
}
