import AsyncHTTPClient
import Foundation
import NIOCore
import SextantJSON

enum TelegramError: Error, Sendable, CustomStringConvertible {
    /// 401/404 on the token: the bot is marked failed and retried with backoff.
    case unauthorized(String)
    case rateLimited(retryAfterSeconds: Int)
    case badRequest(String)
    case transport(String)

    var description: String {
        switch self {
        case .unauthorized(let message): return "token rejected: \(message)"
        case .rateLimited(let seconds): return "rate limited for \(seconds) s"
        case .badRequest(let message): return "bad request: \(message)"
        case .transport(let message): return message
        }
    }
}

/// The Telegram Bot API (https://core.telegram.org/bots/api) over HTTPS: the
/// token travels in the path, so no URL is ever logged.
struct TelegramAPI: Sendable {
    let baseURL: String
    let token: String
    let http: HTTPClient

    /// Telegram's limit on one message's text, in characters after entity parsing.
    static let maximumMessageCharacters = 4_096
    static let maximumReplyBytes = 16 << 20

    func call(_ method: String, _ parameters: [String: JSONValue], timeoutSeconds: Int64) async throws -> JSONValue {
        var request = HTTPClientRequest(url: "\(baseURL)/bot\(token)/\(method)")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: JSON.serialize(.object(parameters))))
        let body: ByteBuffer
        let status: Int
        do {
            let response = try await http.execute(request, timeout: .seconds(timeoutSeconds))
            status = Int(response.status.code)
            body = try await response.body.collect(upTo: Self.maximumReplyBytes)
        } catch {
            // The error text of the HTTP client can carry the URL, which carries the token.
            throw TelegramError.transport("\(method): \(type(of: error)) (network error)")
        }
        let reply = (try? JSON.parse(Array(body.readableBytesView))) ?? .null
        if status == 200, reply["ok"]?.boolValue == true, let result = reply["result"] { return result }
        let description = reply["description"]?.stringValue ?? "HTTP \(status)"
        switch status {
        case 401, 404: throw TelegramError.unauthorized(description)
        case 429: throw TelegramError.rateLimited(retryAfterSeconds: Int(reply["parameters"]?["retry_after"]?.intValue ?? 1))
        case 400..<500: throw TelegramError.badRequest(description)
        default: throw TelegramError.transport("\(method): \(description)")
        }
    }
}

/// Telegram's MarkdownV2: every reserved character outside an entity is escaped
/// with a backslash; inside a link's URL only `)` and `\`.
public enum MarkdownV2 {
    static let reserved: Set<Character> = ["_", "*", "[", "]", "(", ")", "~", "`", ">", "#", "+", "-", "=", "|", "{", "}", ".", "!", "\\"]

    public static func escape(_ text: String) -> String {
        var output = ""
        output.reserveCapacity(text.utf8.count + 16)
        for character in text {
            if reserved.contains(character) { output.append("\\") }
            output.append(character)
        }
        return output
    }

    static func escapeURL(_ url: String) -> String {
        url.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: ")", with: "\\)")
    }

    /// One piece of a message: its MarkdownV2 text and how many characters it shows.
    public struct Block: Sendable {
        public var markup: String
        public var visible: Int
        public init(markup: String, visible: Int) {
            self.markup = markup
            self.visible = visible
        }
    }

    public static func plain(_ text: String) -> Block { Block(markup: escape(text), visible: text.count) }
    public static func bold(_ text: String) -> Block { Block(markup: "*" + escape(text) + "*", visible: text.count) }
    public static func link(_ text: String, _ url: String) -> Block {
        Block(markup: "[" + escape(text) + "](" + escapeURL(url) + ")", visible: text.count)
    }

    /// Packs blocks (joined by blank lines) into messages under Telegram's limit;
    /// a plain block too long for one message is cut at spaces first.
    public static func messages(_ blocks: [Block], limit: Int = 4_096) -> [String] {
        var pieces: [Block] = []
        for block in blocks {
            if block.visible <= limit { pieces.append(block); continue }
            // Only plain text gets this long; split the unescaped text, then escape each part.
            let text = unescape(block.markup)
            var rest = Substring(text)
            while !rest.isEmpty {
                var cut = rest.index(rest.startIndex, offsetBy: min(limit, rest.count))
                if cut < rest.endIndex, let space = rest[..<cut].lastIndex(of: " "), rest.distance(from: rest.startIndex, to: space) > limit / 2 {
                    cut = space
                }
                pieces.append(plain(String(rest[..<cut])))
                rest = rest[cut...].drop(while: { $0 == " " })
            }
        }
        var messages: [String] = []
        var current = ""
        var currentVisible = 0
        for piece in pieces {
            let separator = current.isEmpty ? 0 : 2
            if currentVisible + separator + piece.visible > limit, !current.isEmpty {
                messages.append(current)
                current = ""
                currentVisible = 0
            }
            current += (current.isEmpty ? "" : "\n\n") + piece.markup
            currentVisible += (currentVisible == 0 ? 0 : 2) + piece.visible
        }
        if !current.isEmpty { messages.append(current) }
        return messages
    }

    public static func unescape(_ markup: String) -> String {
        var output = ""
        var escaped = false
        for character in markup {
            if !escaped && character == "\\" { escaped = true; continue }
            escaped = false
            output.append(character)
        }
        return output
    }
}
