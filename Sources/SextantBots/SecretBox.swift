import Crypto
import Foundation

/// Bot tokens are sealed with AES-256-GCM before they reach SQLite, under a key
/// that lives outside the data root (a file or the environment), so a copied
/// database or backup alone does not give the tokens away.
public struct SecretBox: Sendable {
    let key: SymmetricKey

    /// Where the key comes from, in the order tried.
    public static let environmentVariable = "SEXTANT_BOTS_KEY"

    /// `text` is either 32 bytes in base64 (`openssl rand -base64 32`) or a
    /// passphrase, which is stretched with SHA-256 (documented: use a long one).
    public init(keyText: String) throws(BotError) {
        let trimmed = keyText.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.count >= 16 else { throw .configuration("the bot token key must be at least 16 characters") }
        if let raw = Data(base64Encoded: trimmed), raw.count == 32 {
            key = SymmetricKey(data: raw)
        } else {
            key = SymmetricKey(data: SHA256.hash(data: Data(trimmed.utf8)))
        }
    }

    /// The key from `--key-file`, else $SEXTANT_BOTS_KEY; nil when neither is set.
    public static func load(keyFile: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws(BotError)
        -> SecretBox?
    {
        if let keyFile {
            guard let text = try? String(contentsOfFile: keyFile, encoding: .utf8) else { throw .configuration("cannot read \(keyFile)") }
            return try SecretBox(keyText: text)
        }
        if let text = environment[environmentVariable], !text.isEmpty { return try SecretBox(keyText: text) }
        return nil
    }

    public func seal(_ secret: String, context: String) throws(BotError) -> [UInt8] {
        do {
            guard let combined = try AES.GCM.seal(Data(secret.utf8), using: key, authenticating: Data(context.utf8)).combined else {
                throw BotError.configuration("cannot seal")
            }
            return Array(combined)
        } catch { throw .configuration("cannot seal a token: \(error)") }
    }

    /// Fails when the key is wrong or the bytes were altered.
    public func open(_ sealed: [UInt8], context: String) throws(BotError) -> String {
        do {
            let box = try AES.GCM.SealedBox(combined: Data(sealed))
            return String(decoding: try AES.GCM.open(box, using: key, authenticating: Data(context.utf8)), as: UTF8.self)
        } catch {
            throw .configuration("cannot decrypt a bot token: wrong key (\(Self.environmentVariable) / --key-file) or a damaged database")
        }
    }
}

public enum BotError: Error, Sendable, CustomStringConvertible, Equatable {
    case configuration(String)
    case notFound(String)
    case invalid(String)
    case platform(String)

    public var description: String {
        switch self {
        case .configuration(let message): return "configuration: \(message)"
        case .notFound(let message): return "not found: \(message)"
        case .invalid(let message): return "invalid: \(message)"
        case .platform(let message): return "platform: \(message)"
        }
    }
}
