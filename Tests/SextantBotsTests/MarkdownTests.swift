import SextantBots
import Testing

@Suite struct MarkdownTests {
    @Test func reservedCharactersAreEscapedAndLinksKeepTheirURL() {
        #expect(MarkdownV2.escape("1.5 * (a_b) - [x]! #tag") == "1\\.5 \\* \\(a\\_b\\) \\- \\[x\\]\\! \\#tag")
        #expect(MarkdownV2.escape("back\\slash") == "back\\\\slash")
        #expect(MarkdownV2.link("see (docs)", "https://h/a_(b).html").markup == "[see \\(docs\\)](https://h/a_(b\\).html)")
        #expect(MarkdownV2.unescape(MarkdownV2.escape("a.b*c\\d")) == "a.b*c\\d")
    }

    @Test func longAnswersAreSplitUnderTheLimitWithoutBreakingEscapes() {
        let long = String(repeating: "Sentence with reserved chars: a.b (c) - d! ", count: 300)  // ~13,000 characters
        let messages = MarkdownV2.messages([MarkdownV2.bold("Title"), MarkdownV2.plain(long), MarkdownV2.plain("tail.")], limit: 4_096)
        #expect(messages.count >= 4)
        for message in messages {
            #expect(MarkdownV2.unescape(message).count <= 4_096)
            // No message ends inside an escape (a lone trailing backslash).
            let trailing = message.reversed().prefix { $0 == "\\" }.count
            #expect(trailing % 2 == 0)
        }
        let visible = messages.map(MarkdownV2.unescape).joined(separator: " ")
        #expect(visible.replacingOccurrences(of: "  ", with: " ").contains("tail."))
        #expect(messages.first?.hasPrefix("*Title*") == true)
    }
}
