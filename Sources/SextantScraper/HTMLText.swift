import Foundation

/// One unit of a page's text: a heading (level 1...6) or a paragraph-like block (level 0).
public struct TextBlock: Sendable, Equatable {
    public var headingLevel: Int
    public var text: String
    public var preformatted: Bool

    public init(headingLevel: Int, text: String, preformatted: Bool = false) {
        self.headingLevel = headingLevel
        self.text = text
        self.preformatted = preformatted
    }
}

/// What a page says and where it links, with the chrome removed.
public struct ExtractedPage: Sendable, Equatable {
    public var title = ""
    public var blocks: [TextBlock] = []
    /// href values as written (resolved later against `baseHref` or the page URL).
    public var links: [String] = []
    public var canonical: String?
    public var baseHref: String?
    public var noIndex = false
    public var noFollow = false

    public init() {}
}

/// A one-pass, tolerant HTML reader: not a DOM, just enough structure to keep
/// a page's main text (title, headings, paragraphs, lists, tables, code) and
/// drop its chrome (scripts, styles, navigation, headers, footers, sidebars,
/// forms). When the page marks its main content (`<main>`, `role="main"`,
/// `<article>`), only that content is kept.
public enum HTMLText {
    static let voidElements: Set<String> = [
        "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr",
    ]
    /// Elements whose content is never page text.
    static let rawTextElements: Set<String> = ["script", "style", "template", "svg", "math", "noscript", "iframe", "object", "canvas", "textarea"]
    static let chromeElements: Set<String> = ["nav", "form", "button", "select", "dialog", "menu"]
    static let chromeRoles: Set<String> = ["navigation", "search", "banner", "contentinfo", "complementary", "menu", "menubar"]
    /// class or id tokens that mark navigation and boilerplate in common site generators (Sphinx, DocBook, MkDocs, WordPress).
    static let chromeTokens: Set<String> = [
        "nav", "navbar", "navigation", "navheader", "navfooter", "sidebar", "sphinxsidebar", "sphinxsidebarwrapper", "related",
        "footer", "header", "site-header", "site-footer", "breadcrumb", "breadcrumbs", "menu", "menu-wrapper", "mobile-nav",
        "skip-link", "skiplink", "cookie", "cookie-banner", "cookies", "advert", "ads", "share", "social", "headerlink",
        "version_switcher_placeholder", "language_switcher_placeholder", "inline-search", "searchbox", "md-sidebar", "md-header",
        "md-footer", "wy-nav-side", "rst-versions", "edit-this-page", "pagination",
    ]
    static let blockElements: Set<String> = [
        "p", "div", "li", "ul", "ol", "pre", "blockquote", "section", "article", "main", "table", "tr", "td", "th", "dl", "dt",
        "dd", "br", "hr", "figure", "figcaption", "caption", "details", "summary", "body", "tbody", "thead", "tfoot", "header",
        "footer", "address", "center", "h1", "h2", "h3", "h4", "h5", "h6",
    ]

    public static func extract(_ html: String) -> ExtractedPage {
        var reader = Reader(bytes: Array(html.utf8))
        return reader.run()
    }

    struct Open {
        var name: String
        var chrome: Bool
        var main: Bool
    }

    struct Reader {
        let bytes: [UInt8]
        var index = 0
        var page = ExtractedPage()
        var stack: [Open] = []
        var chromeDepth = 0
        var mainDepth = 0
        var text = ""
        var headingLevel = 0
        var preDepth = 0
        var titleText: String? = nil
        var blocksInMain: [TextBlock] = []
        var blocksElsewhere: [TextBlock] = []
        var sawMain = false

        init(bytes: [UInt8]) { self.bytes = bytes }

        mutating func run() -> ExtractedPage {
            var textStart = 0
            while index < bytes.count {
                guard bytes[index] == UInt8(ascii: "<") else {
                    index += 1
                    continue
                }
                if textStart < index { appendText(textStart, index) }
                readMarkup()
                textStart = index
            }
            if textStart < bytes.count { appendText(textStart, bytes.count) }
            flush()
            page.blocks = sawMain ? blocksInMain : blocksElsewhere
            page.title = collapse(HTMLEntities.decode(titleText ?? ""))
            if page.title.isEmpty, let first = page.blocks.first(where: { $0.headingLevel > 0 }) { page.title = first.text }
            return page
        }

        // MARK: markup

        mutating func readMarkup() {
            let start = index
            if starts(with: "<!--") {
                index = find("-->", from: index + 4).map { $0 + 3 } ?? bytes.count
                return
            }
            if starts(with: "<!") || starts(with: "<?") {
                index = find(">", from: index).map { $0 + 1 } ?? bytes.count
                return
            }
            let closing = index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "/")
            var cursor = index + (closing ? 2 : 1)
            let nameStart = cursor
            while cursor < bytes.count, Self.isNameByte(bytes[cursor]) { cursor += 1 }
            guard cursor > nameStart else {
                // A lone "<" is text.
                index = start + 1
                appendText(start, start + 1)
                return
            }
            let name = String(decoding: bytes[nameStart..<cursor], as: UTF8.self).lowercased()
            var attributes: [String: String] = [:]
            var selfClosing = false
            // Attributes: name[=value], value quoted or bare.
            while cursor < bytes.count, bytes[cursor] != UInt8(ascii: ">") {
                let byte = bytes[cursor]
                if byte == UInt8(ascii: "/") { selfClosing = true; cursor += 1; continue }
                if Self.isSpace(byte) { cursor += 1; continue }
                selfClosing = false
                let attributeStart = cursor
                while cursor < bytes.count, !Self.isSpace(bytes[cursor]), bytes[cursor] != UInt8(ascii: "="),
                      bytes[cursor] != UInt8(ascii: ">"), bytes[cursor] != UInt8(ascii: "/") { cursor += 1 }
                let attributeName = String(decoding: bytes[attributeStart..<cursor], as: UTF8.self).lowercased()
                while cursor < bytes.count, Self.isSpace(bytes[cursor]) { cursor += 1 }
                var value = ""
                if cursor < bytes.count, bytes[cursor] == UInt8(ascii: "=") {
                    cursor += 1
                    while cursor < bytes.count, Self.isSpace(bytes[cursor]) { cursor += 1 }
                    if cursor < bytes.count, bytes[cursor] == UInt8(ascii: "\"") || bytes[cursor] == UInt8(ascii: "'") {
                        let quote = bytes[cursor]
                        let valueStart = cursor + 1
                        cursor = valueStart
                        while cursor < bytes.count, bytes[cursor] != quote { cursor += 1 }
                        value = String(decoding: bytes[valueStart..<min(cursor, bytes.count)], as: UTF8.self)
                        cursor += 1
                    } else {
                        let valueStart = cursor
                        while cursor < bytes.count, !Self.isSpace(bytes[cursor]), bytes[cursor] != UInt8(ascii: ">") { cursor += 1 }
                        value = String(decoding: bytes[valueStart..<cursor], as: UTF8.self)
                    }
                }
                if !attributeName.isEmpty, attributes[attributeName] == nil { attributes[attributeName] = HTMLEntities.decode(value) }
                if attributeStart == cursor { cursor += 1 }
            }
            index = min(cursor + 1, bytes.count)
            if closing { close(name) } else { open(name, attributes, selfClosing: selfClosing) }
        }

        mutating func open(_ name: String, _ attributes: [String: String], selfClosing: Bool) {
            switch name {
            case "a":
                if let href = attributes["href"], !(attributes["rel"] ?? "").lowercased().contains("nofollow") { page.links.append(href) }
            case "link":
                if (attributes["rel"] ?? "").lowercased().split(separator: " ").contains("canonical") { page.canonical = attributes["href"] }
            case "base":
                if page.baseHref == nil { page.baseHref = attributes["href"] }
            case "meta":
                if (attributes["name"] ?? "").lowercased() == "robots" {
                    let content = (attributes["content"] ?? "").lowercased()
                    if content.contains("noindex") || content.contains("none") { page.noIndex = true }
                    if content.contains("nofollow") || content.contains("none") { page.noFollow = true }
                }
            case "title" where titleText == nil:
                titleText = rawText(until: "title")
                return
            case "img":
                // Alt text is content the reader would see in place of the image.
                if let alt = attributes["alt"], !alt.isEmpty, chromeDepth == 0 { text += " " + alt + " " }
            default: break
            }
            if HTMLText.rawTextElements.contains(name) {
                if !selfClosing { _ = rawText(until: name) }
                return
            }
            if HTMLText.voidElements.contains(name) || selfClosing {
                if name == "br" || name == "hr" { if preDepth > 0 { text += "\n" } else { flush() } }
                return
            }
            if HTMLText.blockElements.contains(name) { flush() }
            let role = (attributes["role"] ?? "").lowercased()
            let tokens = ((attributes["class"] ?? "") + " " + (attributes["id"] ?? "")).lowercased()
                .split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
            let isMain = name == "main" || name == "article" || role == "main"
            var chrome = HTMLText.chromeElements.contains(name) || HTMLText.chromeRoles.contains(role)
                || tokens.contains(where: { HTMLText.chromeTokens.contains(String($0)) })
            // A header, footer or aside inside the main content is part of it (an
            // article's title, docutils' footnotes live there); outside, it is chrome.
            if (name == "header" || name == "footer" || name == "aside") && mainDepth == 0 { chrome = true }
            if isMain { mainDepth += 1; sawMain = true }
            if chrome { chromeDepth += 1 }
            if name == "pre" { preDepth += 1 }
            if name.count == 2, name.first == "h", let level = Int(String(name.dropFirst())), (1...6).contains(level) {
                headingLevel = level
            }
            stack.append(Open(name: name, chrome: chrome, main: isMain))
        }

        mutating func close(_ name: String) {
            // Close back to the nearest matching open element; stray end tags are ignored.
            guard let position = stack.lastIndex(where: { $0.name == name }) else { return }
            if HTMLText.blockElements.contains(name) { flush() }
            while stack.count > position {
                let element = stack.removeLast()
                if element.chrome { chromeDepth -= 1 }
                if element.main { mainDepth -= 1 }
                if element.name == "pre" { preDepth -= 1 }
                if element.name.count == 2, element.name.first == "h", Int(String(element.name.dropFirst())) != nil { headingLevel = 0 }
            }
        }

        /// Skips to `</name>` and returns what was between.
        mutating func rawText(until name: String) -> String {
            let start = index
            var cursor = index
            while let found = find("</", from: cursor) {
                let nameStart = found + 2
                let nameEnd = nameStart + name.utf8.count
                if nameEnd <= bytes.count,
                   String(decoding: bytes[nameStart..<nameEnd], as: UTF8.self).lowercased() == name,
                   nameEnd == bytes.count || !Self.isNameByte(bytes[nameEnd]) {
                    index = find(">", from: nameEnd).map { $0 + 1 } ?? bytes.count
                    return String(decoding: bytes[start..<found], as: UTF8.self)
                }
                cursor = found + 2
            }
            index = bytes.count
            return String(decoding: bytes[start...], as: UTF8.self)
        }

        // MARK: text

        mutating func appendText(_ from: Int, _ to: Int) {
            guard chromeDepth == 0 else { return }
            text += String(decoding: bytes[from..<to], as: UTF8.self)
        }

        mutating func flush() {
            defer { text = "" }
            guard !text.isEmpty else { return }
            let decoded = HTMLEntities.decode(text)
            let cleaned = preDepth > 0 ? decoded.trimmingCharacters(in: .newlines) : collapse(decoded)
            guard !cleaned.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { return }
            let block = TextBlock(headingLevel: headingLevel, text: cleaned, preformatted: preDepth > 0)
            if mainDepth > 0 { blocksInMain.append(block) } else { blocksElsewhere.append(block) }
        }

        func collapse(_ text: String) -> String {
            text.split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
        }

        // MARK: bytes

        func starts(with literal: String) -> Bool {
            let pattern = Array(literal.utf8)
            guard index + pattern.count <= bytes.count else { return false }
            for offset in 0..<pattern.count where Self.lower(bytes[index + offset]) != pattern[offset] { return false }
            return true
        }

        func find(_ literal: String, from start: Int) -> Int? {
            let pattern = Array(literal.utf8)
            guard let first = pattern.first, start < bytes.count else { return nil }
            var cursor = start
            while cursor + pattern.count <= bytes.count {
                if bytes[cursor] == first {
                    var matched = true
                    for offset in 1..<pattern.count where bytes[cursor + offset] != pattern[offset] {
                        matched = false
                        break
                    }
                    if matched { return cursor }
                }
                cursor += 1
            }
            return nil
        }

        static func lower(_ byte: UInt8) -> UInt8 { byte >= 65 && byte <= 90 ? byte + 32 : byte }
        static func isSpace(_ byte: UInt8) -> Bool { byte == 32 || byte == 9 || byte == 10 || byte == 13 || byte == 12 }
        static func isNameByte(_ byte: UInt8) -> Bool {
            (byte >= 97 && byte <= 122) || (byte >= 65 && byte <= 90) || (byte >= 48 && byte <= 57) || byte == 45 || byte == 58 || byte == 95
        }
    }
}

/// Character references: numeric ones and the named ones documentation pages use.
public enum HTMLEntities {
    static let named: [String: String] = [
        "amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'", "nbsp": " ", "mdash": "—", "ndash": "–", "hellip": "…",
        "copy": "©", "reg": "®", "trade": "™", "laquo": "«", "raquo": "»", "lsquo": "‘", "rsquo": "’", "ldquo": "“",
        "rdquo": "”", "para": "¶", "sect": "§", "middot": "·", "bull": "•", "times": "×", "minus": "−", "larr": "←",
        "rarr": "→", "uarr": "↑", "darr": "↓", "harr": "↔", "deg": "°", "plusmn": "±", "divide": "÷", "le": "≤", "ge": "≥",
        "ne": "≠", "shy": "", "zwj": "", "zwnj": "", "euro": "€", "pound": "£", "yen": "¥", "cent": "¢", "eacute": "é",
        "egrave": "è", "auml": "ä", "ouml": "ö", "uuml": "ü", "szlig": "ß", "aacute": "á", "iacute": "í", "oacute": "ó",
        "uacute": "ú", "ntilde": "ñ", "ccedil": "ç", "thinsp": " ", "ensp": " ", "emsp": " ", "prime": "′", "infin": "∞",
    ]

    public static func decode(_ text: String) -> String {
        guard text.contains("&") else { return text }
        var output = ""
        output.reserveCapacity(text.utf8.count)
        var rest = Substring(text)
        while let amp = rest.firstIndex(of: "&") {
            output += rest[..<amp]
            let after = rest[rest.index(after: amp)...]
            guard let semicolon = after.prefix(32).firstIndex(of: ";") else {
                output += "&"
                rest = after
                continue
            }
            let name = after[..<semicolon]
            var replacement: String? = nil
            if name.hasPrefix("#x") || name.hasPrefix("#X") {
                replacement = UInt32(name.dropFirst(2), radix: 16).flatMap(Unicode.Scalar.init).map { String(Character($0)) }
            } else if name.hasPrefix("#") {
                replacement = UInt32(name.dropFirst()).flatMap(Unicode.Scalar.init).map { String(Character($0)) }
            } else {
                replacement = named[String(name)]
            }
            if let replacement {
                output += replacement
                rest = after[after.index(after: semicolon)...]
            } else {
                output += "&"
                rest = after
            }
        }
        output += rest
        return output
    }
}

/// Bytes → text by the charset the response header or the page's own meta tag names.
public enum HTMLDecoding {
    public static func decode(_ bytes: [UInt8], contentType: String?) -> String {
        let charset = charsetParameter(contentType) ?? sniffMetaCharset(bytes) ?? "utf-8"
        switch charset {
        case "utf-8", "utf8", "unicode-1-1-utf-8":
            return String(decoding: stripBOM(bytes), as: UTF8.self)
        case "iso-8859-1", "latin1", "latin-1", "l1", "us-ascii", "ascii", "iso8859-1":
            return String(String.UnicodeScalarView(bytes.map { Unicode.Scalar($0) }))
        case "windows-1252", "cp1252", "x-cp1252":
            return String(String.UnicodeScalarView(bytes.map { byte in
                if byte >= 0x80 && byte <= 0x9F, let scalar = Unicode.Scalar(windows1252High[Int(byte - 0x80)]) { return scalar }
                return Unicode.Scalar(byte)
            }))
        default:
            let encodings: [String: String.Encoding] = [
                "utf-16": .utf16, "utf-16le": .utf16LittleEndian, "utf-16be": .utf16BigEndian, "shift_jis": .shiftJIS,
                "euc-jp": .japaneseEUC, "iso-2022-jp": .iso2022JP, "windows-1251": .windowsCP1251, "windows-1250": .windowsCP1250,
                "iso-8859-2": .isoLatin2,
            ]
            if let encoding = encodings[charset], let text = String(data: Data(bytes), encoding: encoding) { return text }
            // An unknown or lying charset: UTF-8 with replacement characters beats dropping the page.
            return String(decoding: stripBOM(bytes), as: UTF8.self)
        }
    }

    static func stripBOM(_ bytes: [UInt8]) -> ArraySlice<UInt8> {
        bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? bytes[3...] : bytes[...]
    }

    static func charsetParameter(_ contentType: String?) -> String? {
        guard let contentType else { return nil }
        for part in contentType.split(separator: ";") {
            let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if pair.count == 2, pair[0].lowercased() == "charset" {
                return pair[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"'")).lowercased()
            }
        }
        return nil
    }

    /// `<meta charset=…>` or `<meta http-equiv=content-type content="…; charset=…">` in the first 2 KiB.
    static func sniffMetaCharset(_ bytes: [UInt8]) -> String? {
        let head = String(decoding: bytes.prefix(2_048), as: UTF8.self).lowercased()
        guard let range = head.range(of: "charset=") else { return nil }
        let value = head[range.upperBound...].drop(while: { $0 == "\"" || $0 == "'" || $0 == " " })
        let name = value.prefix(while: { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
        return name.isEmpty ? nil : String(name)
    }

    /// Windows-1252's 0x80...0x9F.
    static let windows1252High: [UInt32] = [
        0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D, 0x017D, 0x8F,
        0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D, 0x017E, 0x0178,
    ]
}
