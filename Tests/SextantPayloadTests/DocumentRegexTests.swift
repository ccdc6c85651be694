import Foundation
import SextantPayload
import Testing

/// `$regex` on documents: the linear-time matcher agrees with a backtracking
/// reference (Foundation's ICU engine) on generated patterns and texts, stays
/// linear on patterns that make backtracking engines explode, and refuses
/// what it does not support with a reason.
@Suite struct DocumentRegexTests {
    func matches(_ pattern: String, _ text: String) -> Bool {
        var text = text
        return text.withUTF8 { DocumentRegex(pattern).matches(UnsafeRawBufferPointer($0)) }
    }

    /// ICU's `$` also matches before a final newline; Rust's (Chroma's) only at the very end, as `\z` does.
    func reference(_ pattern: String, _ text: String) -> Bool {
        guard let expression = try? NSRegularExpression(pattern: pattern.replacingOccurrences(of: "$", with: "\\z")) else { return false }
        return expression.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }

    @Test func knownCases() {
        #expect(matches("curl", "the curl tool"))
        #expect(!matches("^curl", "the curl tool"))
        #expect(matches("tool$", "the curl tool"))
        #expect(matches("c[a-z]+l", "the curl tool"))
        #expect(matches("\\d{3}-\\d{4}", "call 555-1234 now"))
        #expect(!matches("\\d{3}-\\d{4}", "call 55-1234 now"))
        #expect(matches("(?i)CURL", "the curl tool"))
        #expect(matches("colou?r", "color") && matches("colou?r", "colour"))
        #expect(matches("(cat|dog)s?$", "two dogs"))
        #expect(!matches("a.b", "a\nb"), "a dot does not match a newline")
        #expect(matches("[^\\s]+@[^\\s]+", "mail me at x@y.org"))
        #expect(matches("é+", "café") && matches("\\w+", "東京"))
        #expect(matches("a{2,3}", "caaat") && !matches("^a{2,3}$", "aaaa"))
        #expect(matches("", "anything") || DocumentRegex("").error == nil)
    }

    @Test func agreesWithABacktrackingReference() {
        var state: UInt64 = 0x5EED
        func next(_ bound: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(bound))
        }
        let atoms = ["a", "b", "c", ".", "[ab]", "[^a]", "\\d", "\\s", "x", "(a|bc)", "(?:ab)", "1"]
        let quantifiers = ["", "", "", "*", "+", "?", "{2}", "{1,3}", "{0,}"]
        var compared = 0
        for _ in 0..<3_000 {
            var pattern = next(5) == 0 ? "^" : ""
            for _ in 0..<(1 + next(4)) { pattern += atoms[next(atoms.count)] + quantifiers[next(quantifiers.count)] }
            if next(5) == 0 { pattern += "$" }
            if next(7) == 0 { pattern = "(" + pattern + ")|b" + atoms[next(atoms.count)] }
            let alphabet = Array("abcx1 \nb")
            let text = String((0..<next(12)).map { _ in alphabet[next(alphabet.count)] })
            #expect(DocumentRegex(pattern).error == nil, "\(pattern)")
            #expect(matches(pattern, text) == reference(pattern, text), "pattern \(pattern) on \(text.debugDescription)")
            compared += 1
        }
        #expect(compared == 3_000)
    }

    @Test func pathologicalPatternsStayLinear() {
        let text = String(repeating: "a", count: 20_000)
        // Each of these takes a backtracking engine exponential or quadratic time on a long run of a's.
        #expect(!matches("(a*)*b", text))
        #expect(!matches("(a|a)*b", text))
        #expect(!matches("(a|aa)+$b", text))
        #expect(matches("(a+)+a", text))
    }

    @Test func unsupportedOrBrokenPatternsAreRefusedWithAReason() {
        for pattern in ["(", "a)", "[a-", "[z-a]", "a{2000}", "\\q", "*a", "(?=a)", "(?s)."] {
            #expect(DocumentRegex(pattern).error != nil, "\(pattern)")
        }
        #expect(throws: PayloadError.self) { try DocumentFilter.regex(DocumentRegex("(")).validate() }
        #expect(DocumentRegex(String(repeating: "a", count: 2_000)).error?.contains("exceeds") == true)
    }
}
