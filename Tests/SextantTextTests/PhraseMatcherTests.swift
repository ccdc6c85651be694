import SextantText
import Testing

@Suite struct PhraseMatcherTests {
    func holds(_ document: String, _ query: String) -> Bool? {
        guard let matcher = PhraseMatcher(query) else { return nil }
        var bytes = Array(document.utf8)
        return bytes.withUnsafeMutableBytes { matcher.matches(UnsafeRawBufferPointer($0)) }
    }

    @Test func wordsInOrderIgnoringCaseAndPunctuation() {
        let document = "Spell-checking dictionaries, hyphenation patterns; and the  THESAURUS for LibreOffice."
        #expect(holds(document, "spell checking") == true)
        #expect(holds(document, "Hyphenation patterns and the") == true)
        #expect(holds(document, "thesaurus, for libreoffice") == true)
        #expect(holds(document, "patterns hyphenation") == false, "order matters")
        #expect(holds(document, "dictionaries patterns") == false, "words must be adjacent")
        #expect(holds(document, "checking dictionaries hyphenation patterns and the thesaurus for libreoffice extra") == false)
        #expect(holds(document, "spell checkin") == false, "whole words only")
        #expect(holds("naïve café au lait", "café au") == true, "non-ASCII bytes compare as they are")
        #expect(holds("a b", "a b") == true)
        #expect(holds("set foo_bar now", "foo bar") == false, "an underscore joins a word, as in the tokenizer")
        #expect(holds("set foo_bar now", "set foo_bar") == true)
    }

    @Test func oneWordOrProseIsNotAPhrase() {
        #expect(PhraseMatcher("curl") == nil)
        #expect(PhraseMatcher("  --  ") == nil)
        #expect(PhraseMatcher(Array(repeating: "word", count: 33).joined(separator: " ")) == nil)
        #expect(PhraseMatcher(Array(repeating: "word", count: 32).joined(separator: " "))?.wordCount == 32)
    }
}
