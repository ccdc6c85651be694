import Foundation
import SextantAnswers
import SextantSQLite

public enum Platform: String, Sendable, Codable, CaseIterable { case telegram, discord }

/// A bot as the admin API shows it: never with its token.
public struct BotRecord: Sendable, Equatable, Codable {
    public var id: Int64
    public var platform: Platform
    public var name: String
    public var collection: String
    public var systemPrompt: String
    public var answerStyle: ComposedAnswer.Style
    public var enabled: Bool
    /// stopped, starting, running, failed
    public var status: String
    public var lastError: String?
    public var messagesAnswered: Int
    /// The collection update event this bot has picked up.
    public var dataSequence: Int64
}

/// What creating or changing a bot may set.
public struct BotSettings: Sendable, Equatable {
    public var platform: Platform?
    public var name: String?
    public var token: String?
    public var collection: String?
    public var systemPrompt: String?
    public var answerStyle: ComposedAnswer.Style?
    public var enabled: Bool?
    public init() {}
}

/// ROOT/bots/bots.sqlite: bot configurations (tokens sealed), their running
/// state (status, last error, Telegram offset, Discord session), and the
/// conversations, each chat's history bounded.
public final class BotStore: Sendable {
    public let database: Database
    let secrets: SecretBox?

    public static let maximumBots = 1_000
    public static let maximumNameCharacters = 64
    public static let maximumPromptCharacters = 4_000
    public static let maximumTokenBytes = 512
    /// Turns kept per chat; older ones are deleted as new ones come.
    public static let historyTurnsKept = 20
    /// Characters of a message stored in a turn.
    public static let maximumTurnCharacters = 4_096

    public init(path: String, secrets: SecretBox?) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        database = try Database(path: path)
        self.secrets = secrets
        try database.execute("""
            CREATE TABLE IF NOT EXISTS bots(
              id INTEGER PRIMARY KEY, platform TEXT NOT NULL CHECK (platform IN ('telegram', 'discord')),
              name TEXT NOT NULL UNIQUE, token BLOB NOT NULL, collection TEXT NOT NULL, system_prompt TEXT NOT NULL DEFAULT '',
              answer_style TEXT NOT NULL DEFAULT 'extractive', enabled INTEGER NOT NULL DEFAULT 1,
              created_at REAL NOT NULL, updated_at REAL NOT NULL);
            CREATE TABLE IF NOT EXISTS bot_state(
              bot_id INTEGER PRIMARY KEY REFERENCES bots(id) ON DELETE CASCADE,
              status TEXT NOT NULL DEFAULT 'stopped', last_error TEXT, telegram_offset INTEGER NOT NULL DEFAULT 0,
              discord_session TEXT, discord_sequence INTEGER, discord_resume_url TEXT, discord_user TEXT,
              data_sequence INTEGER NOT NULL DEFAULT 0, messages_answered INTEGER NOT NULL DEFAULT 0, updated_at REAL NOT NULL);
            CREATE TABLE IF NOT EXISTS turns(
              id INTEGER PRIMARY KEY, bot_id INTEGER NOT NULL REFERENCES bots(id) ON DELETE CASCADE, chat_id TEXT NOT NULL,
              role TEXT NOT NULL, text TEXT NOT NULL, sources TEXT NOT NULL DEFAULT '[]', at REAL NOT NULL);
            CREATE INDEX IF NOT EXISTS turns_by_chat ON turns(bot_id, chat_id, id);
            """)
    }

    // MARK: - Configurations

    static let recordColumns = """
        b.id, b.platform, b.name, b.collection, b.system_prompt, b.answer_style, b.enabled,
        COALESCE(s.status, 'stopped'), s.last_error, COALESCE(s.messages_answered, 0), COALESCE(s.data_sequence, 0)
        """

    public func list() throws -> [BotRecord] {
        try database.query("SELECT \(Self.recordColumns) FROM bots b LEFT JOIN bot_state s ON s.bot_id = b.id ORDER BY b.id")
            .map(Self.record)
    }

    public func bot(_ id: Int64) throws -> BotRecord {
        guard let row = try database.query(
            "SELECT \(Self.recordColumns) FROM bots b LEFT JOIN bot_state s ON s.bot_id = b.id WHERE b.id = ?", [.integer(id)]).first
        else { throw BotError.notFound("bot \(id)") }
        return Self.record(row)
    }

    public func bot(named name: String) throws -> BotRecord? {
        try database.query("SELECT \(Self.recordColumns) FROM bots b LEFT JOIN bot_state s ON s.bot_id = b.id WHERE b.name = ?",
                           [.text(name)]).first.map(Self.record)
    }

    static func record(_ row: Row) -> BotRecord {
        BotRecord(id: row[0].integer ?? 0, platform: Platform(rawValue: row[1].text ?? "") ?? .telegram, name: row[2].text ?? "",
                  collection: row[3].text ?? "", systemPrompt: row[4].text ?? "",
                  answerStyle: ComposedAnswer.Style(rawValue: row[5].text ?? "") ?? .extractive, enabled: (row[6].integer ?? 0) != 0,
                  status: row[7].text ?? "stopped", lastError: row[8].text, messagesAnswered: Int(row[9].integer ?? 0),
                  dataSequence: row[10].integer ?? 0)
    }

    static func validate(_ settings: BotSettings) throws(BotError) {
        if let name = settings.name {
            guard (1...maximumNameCharacters).contains(name.count),
                  name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") })
            else { throw .invalid("name must be 1...\(maximumNameCharacters) characters of [A-Za-z0-9_-]") }
        }
        if let token = settings.token {
            guard (1...maximumTokenBytes).contains(token.utf8.count), !token.contains(where: { $0.isWhitespace }) else {
                throw .invalid("token must be 1...\(maximumTokenBytes) bytes without spaces")
            }
        }
        if let collection = settings.collection, !(1...512).contains(collection.utf8.count) {
            throw .invalid("collection must be 1...512 bytes")
        }
        if let prompt = settings.systemPrompt, prompt.count > maximumPromptCharacters {
            throw .invalid("system prompt must be at most \(maximumPromptCharacters) characters")
        }
    }

    public func create(_ settings: BotSettings) throws -> BotRecord {
        try Self.validate(settings)
        guard let platform = settings.platform, let name = settings.name, let token = settings.token, let collection = settings.collection
        else { throw BotError.invalid("a bot needs platform, name, token and collection") }
        guard let secrets else {
            throw BotError.configuration("no key to encrypt bot tokens with: set \(SecretBox.environmentVariable) or pass --key-file")
        }
        guard try list().count < Self.maximumBots else { throw BotError.invalid("at most \(Self.maximumBots) bots") }
        guard try bot(named: name) == nil else { throw BotError.invalid("a bot named '\(name)' exists") }
        let now = Date().timeIntervalSince1970
        let id: Int64 = try database.transaction { transaction in
            let rows = try transaction.query("""
                INSERT INTO bots(platform, name, token, collection, system_prompt, answer_style, enabled, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id
                """, [.text(platform.rawValue), .text(name), .blob(try secrets.seal(token, context: name)), .text(collection),
                      .text(settings.systemPrompt ?? ""), .text((settings.answerStyle ?? .extractive).rawValue),
                      .integer((settings.enabled ?? true) ? 1 : 0), .real(now), .real(now)])
            let id = rows.first?.first?.integer ?? 0
            _ = try transaction.query("INSERT INTO bot_state(bot_id, updated_at) VALUES (?, ?)", [.integer(id), .real(now)])
            return id
        }
        return try bot(id)
    }

    public func update(_ id: Int64, _ settings: BotSettings) throws -> BotRecord {
        try Self.validate(settings)
        let current = try bot(id)
        if settings.platform != nil && settings.platform != current.platform { throw BotError.invalid("a bot's platform cannot change") }
        if let name = settings.name, name != current.name {
            // The sealed token is bound to the name: re-seal under the new one.
            guard settings.token != nil else { throw BotError.invalid("renaming a bot needs its token again") }
            guard try bot(named: name) == nil else { throw BotError.invalid("a bot named '\(name)' exists") }
        }
        let name = settings.name ?? current.name
        var sets: [String] = ["updated_at = ?"]
        var values: [SQLValue] = [.real(Date().timeIntervalSince1970)]
        if let token = settings.token {
            guard let secrets else { throw BotError.configuration("no key to encrypt bot tokens with") }
            sets.append("token = ?")
            values.append(.blob(try secrets.seal(token, context: name)))
        }
        if settings.name != nil { sets.append("name = ?"); values.append(.text(name)) }
        if let collection = settings.collection { sets.append("collection = ?"); values.append(.text(collection)) }
        if let prompt = settings.systemPrompt { sets.append("system_prompt = ?"); values.append(.text(prompt)) }
        if let style = settings.answerStyle { sets.append("answer_style = ?"); values.append(.text(style.rawValue)) }
        if let enabled = settings.enabled { sets.append("enabled = ?"); values.append(.integer(enabled ? 1 : 0)) }
        _ = try database.query("UPDATE bots SET \(sets.joined(separator: ", ")) WHERE id = ?", values + [.integer(id)])
        return try bot(id)
    }

    public func delete(_ id: Int64) throws {
        _ = try bot(id)
        _ = try database.query("DELETE FROM bots WHERE id = ?", [.integer(id)])
    }

    /// The bot's token, decrypted (never logged, never returned by the admin API).
    public func token(_ id: Int64) throws -> String {
        guard let secrets else { throw BotError.configuration("no key to decrypt bot tokens with: set \(SecretBox.environmentVariable)") }
        guard let row = try database.query("SELECT name, token FROM bots WHERE id = ?", [.integer(id)]).first,
              let sealed = row[1].blob else { throw BotError.notFound("bot \(id)") }
        return try secrets.open(sealed, context: row[0].text ?? "")
    }

    // MARK: - Running state

    public func setStatus(_ id: Int64, _ status: String, error: String? = nil) throws {
        _ = try database.query("UPDATE bot_state SET status = ?, last_error = ?, updated_at = ? WHERE bot_id = ?",
                               [.text(status), error.map(SQLValue.text) ?? .null, .real(Date().timeIntervalSince1970), .integer(id)])
    }

    public func setDataSequence(_ id: Int64, _ sequence: Int64) throws {
        _ = try database.query("UPDATE bot_state SET data_sequence = ? WHERE bot_id = ?", [.integer(sequence), .integer(id)])
    }

    /// A Discord Gateway session that can be resumed.
    public struct DiscordSession: Sendable, Equatable {
        public var sessionID: String
        public var sequence: Int64?
        public var resumeURL: String?
        public var userID: String?
    }

    public func discordSession(_ id: Int64) throws -> DiscordSession? {
        guard let row = try database.query(
            "SELECT discord_session, discord_sequence, discord_resume_url, discord_user FROM bot_state WHERE bot_id = ?", [.integer(id)]).first,
              let session = row[0].text else { return nil }
        return DiscordSession(sessionID: session, sequence: row[1].integer, resumeURL: row[2].text, userID: row[3].text)
    }

    public func saveDiscordSession(_ id: Int64, _ session: DiscordSession?) throws {
        _ = try database.query(
            "UPDATE bot_state SET discord_session = ?, discord_sequence = ?, discord_resume_url = ?, discord_user = ? WHERE bot_id = ?",
            [session.map { .text($0.sessionID) } ?? .null, session?.sequence.map(SQLValue.integer) ?? .null,
             session?.resumeURL.map(SQLValue.text) ?? .null, session?.userID.map(SQLValue.text) ?? .null, .integer(id)])
    }

    /// Events up to `sequence` are handled: a resume replays only what came after.
    public func saveDiscordSequence(_ id: Int64, _ sequence: Int64) throws {
        _ = try database.query("UPDATE bot_state SET discord_sequence = MAX(COALESCE(discord_sequence, 0), ?) WHERE bot_id = ?",
                               [.integer(sequence), .integer(id)])
    }

    public func telegramOffset(_ id: Int64) throws -> Int64 {
        try database.query("SELECT telegram_offset FROM bot_state WHERE bot_id = ?", [.integer(id)]).first?.first?.integer ?? 0
    }

    /// Where a bot is in its platform's stream of updates.
    public enum Cursor: Sendable {
        /// Telegram's next getUpdates offset.
        case telegram(Int64)
        /// The Discord Gateway sequence number handled.
        case discord(Int64)
        case none
    }

    /// Records a message answered, in one transaction: both turns, the history
    /// bound, the count, and the platform cursor, so a restart resumes exactly
    /// after the last answered message.
    public func recordExchange(bot id: Int64, chat: String, question: String, answer: String, sources: [String],
                               cursor: Cursor) throws {
        let now = Date().timeIntervalSince1970
        let sourcesText = String(decoding: (try? JSONEncoder().encode(sources)) ?? Data("[]".utf8), as: UTF8.self)
        try database.transaction { transaction in
            _ = try transaction.query("INSERT INTO turns(bot_id, chat_id, role, text, at) VALUES (?, ?, 'user', ?, ?)",
                                      [.integer(id), .text(chat), .text(String(question.prefix(Self.maximumTurnCharacters))), .real(now)])
            _ = try transaction.query("INSERT INTO turns(bot_id, chat_id, role, text, sources, at) VALUES (?, ?, 'assistant', ?, ?, ?)",
                                      [.integer(id), .text(chat), .text(String(answer.prefix(Self.maximumTurnCharacters))), .text(sourcesText),
                                       .real(now)])
            _ = try transaction.query("""
                DELETE FROM turns WHERE bot_id = ? AND chat_id = ? AND id NOT IN
                  (SELECT id FROM turns WHERE bot_id = ? AND chat_id = ? ORDER BY id DESC LIMIT ?)
                """, [.integer(id), .text(chat), .integer(id), .text(chat), .integer(Int64(Self.historyTurnsKept))])
            switch cursor {
            case .telegram(let offset):
                _ = try transaction.query("UPDATE bot_state SET telegram_offset = ?, messages_answered = messages_answered + 1 WHERE bot_id = ?",
                                          [.integer(offset), .integer(id)])
            case .discord(let sequence):
                _ = try transaction.query(
                    "UPDATE bot_state SET discord_sequence = MAX(COALESCE(discord_sequence, 0), ?), messages_answered = messages_answered + 1 WHERE bot_id = ?",
                    [.integer(sequence), .integer(id)])
            case .none:
                _ = try transaction.query("UPDATE bot_state SET messages_answered = messages_answered + 1 WHERE bot_id = ?", [.integer(id)])
            }
        }
    }

    /// Moves Telegram's offset past an update that needs no answer (not a text message).
    public func skipTelegramUpdate(bot id: Int64, nextOffset: Int64) throws {
        _ = try database.query("UPDATE bot_state SET telegram_offset = MAX(telegram_offset, ?) WHERE bot_id = ?",
                               [.integer(nextOffset), .integer(id)])
    }

    /// The bot's latest turns across its chats, newest first, for its owner's
    /// page: who wrote what and when, and what the bot answered.
    public struct RecordedTurn: Sendable {
        public var chat: String
        public var role: String
        public var text: String
        public var at: Double
    }

    public func recentTurns(bot id: Int64, limit: Int) throws -> [RecordedTurn] {
        precondition((1...500).contains(limit), "a bounded page of turns")
        return try database.query("SELECT chat_id, role, text, at FROM turns WHERE bot_id = ? ORDER BY id DESC LIMIT ?",
                                  [.integer(id), .integer(Int64(limit))])
            .map { RecordedTurn(chat: $0[0].text ?? "", role: $0[1].text ?? "user", text: $0[2].text ?? "", at: $0[3].real ?? 0) }
    }

    public func history(bot id: Int64, chat: String) throws -> [ConversationTurn] {
        try database.query("SELECT role, text FROM turns WHERE bot_id = ? AND chat_id = ? ORDER BY id", [.integer(id), .text(chat)])
            .map { ConversationTurn(role: $0[0].text ?? "user", text: $0[1].text ?? "") }
    }
}
