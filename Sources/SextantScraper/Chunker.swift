import Crypto
import Foundation

/// How pages are cut into the passages that get embedded and retrieved.
public struct ChunkingPolicy: Sendable, Equatable {
    /// Upper bound of a chunk's body, in characters. all-MiniLM-L6-v2 reads 256
    /// word pieces, roughly 1,000 characters of English: longer chunks would be
    /// embedded only in part.
    public var maximumCharacters = 1_000
    /// Characters of the previous chunk's tail repeated at the start of the next
    /// one inside the same section, so a sentence cut by the bound is whole somewhere.
    public var overlapCharacters = 150

    public static let characterRange = 200...8_000

    public init(maximumCharacters: Int = 1_000, overlapCharacters: Int = 150) throws(ScrapeError) {
        guard Self.characterRange.contains(maximumCharacters) else {
            throw .configuration("chunk size must be \(Self.characterRange.lowerBound)...\(Self.characterRange.upperBound) characters")
        }
        guard overlapCharacters >= 0, overlapCharacters * 2 <= maximumCharacters else {
            throw .configuration("chunk overlap must be 0...half the chunk size")
        }
        self.maximumCharacters = maximumCharacters
        self.overlapCharacters = overlapCharacters
    }
}

/// One passage of a page.
public struct PageChunk: Sendable, Equatable {
    /// 0-based order within the page.
    public var position: Int
    /// The headings above this chunk, outermost first.
    public var headingPath: [String]
    /// What is embedded and stored as the record's document: the page title and
    /// heading path on the first line (they carry the topic), then the body.
    public var document: String
    /// SHA-256 of `document`, hex.
    public var contentHash: String

    /// The record id: `<first 16 hex of SHA-256(canonical URL)>-<position>-<first 12 hex of contentHash>`.
    /// Stable while the chunk's text and place are unchanged; any edit to it
    /// makes a new id (the old one is deleted), so an id always names one text.
    public func id(urlKey: String) -> String { "\(urlKey)-\(position)-\(contentHash.prefix(12))" }

    public static func urlKey(_ canonicalURL: String) -> String { String(sha256Hex(canonicalURL).prefix(16)) }
}

func sha256Hex(_ text: String) -> String {
    SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
}

/// Cuts a page's blocks into chunks that follow its headings and paragraphs.
public enum Chunker {
    public static func chunks(_ page: ExtractedPage, policy: ChunkingPolicy) -> [PageChunk] {
        var chunks: [PageChunk] = []
        var headings: [(level: Int, text: String)] = []
        var body = ""
        var bodyHasNewText = false

        func emit() {
            defer {
                body = ""
                bodyHasNewText = false
            }
            guard bodyHasNewText else { return }
            let path = headings.map(\.text)
            var context = page.title.isEmpty ? [] : [page.title]
            for heading in path where heading != page.title { context.append(heading) }
            let document = context.isEmpty ? body : context.joined(separator: " › ") + "\n" + body
            chunks.append(PageChunk(position: chunks.count, headingPath: path, document: document, contentHash: sha256Hex(document)))
        }

        func add(_ piece: String) {
            if !body.isEmpty && body.count + 1 + piece.count > policy.maximumCharacters {
                let tail = overlapTail(body, policy.overlapCharacters)
                emit()
                body = tail
            }
            body += body.isEmpty ? piece : "\n" + piece
            bodyHasNewText = true
        }

        for block in page.blocks {
            if block.headingLevel > 0 {
                emit()
                while let last = headings.last, last.level >= block.headingLevel { headings.removeLast() }
                headings.append((block.headingLevel, String(block.text.prefix(200))))
                continue
            }
            for piece in split(block.text, limit: policy.maximumCharacters - policy.overlapCharacters - 1) { add(piece) }
        }
        emit()
        return chunks
    }

    /// The last `count` characters of `text`, starting at a word boundary.
    static func overlapTail(_ text: String, _ count: Int) -> String {
        guard count > 0, text.count > count else { return "" }
        let tail = text.suffix(count)
        guard let space = tail.firstIndex(where: { $0 == " " || $0 == "\n" }) else { return String(tail) }
        return String(tail[tail.index(after: space)...])
    }

    /// A block longer than `limit` split at sentence ends, else at spaces, else hard.
    static func split(_ text: String, limit: Int) -> [String] {
        guard text.count > limit else { return [text] }
        var pieces: [String] = []
        var rest = Substring(text)
        while rest.count > limit {
            let window = rest.prefix(limit)
            let cut = window.lastIndex(where: { $0 == "." || $0 == "!" || $0 == "?" || $0 == "\n" })
                .flatMap { index -> Substring.Index? in
                    window.distance(from: window.startIndex, to: index) > limit / 2 ? window.index(after: index) : nil
                }
                ?? window.lastIndex(of: " ").flatMap { window.distance(from: window.startIndex, to: $0) > limit / 2 ? $0 : nil }
                ?? window.endIndex
            let piece = rest[..<cut].trimmingCharacters(in: .whitespacesAndNewlines)
            if !piece.isEmpty { pieces.append(piece) }
            rest = rest[cut...].drop(while: { $0 == " " || $0 == "\n" })
        }
        let last = rest.trimmingCharacters(in: .whitespacesAndNewlines)
        if !last.isEmpty { pieces.append(last) }
        return pieces
    }
}
