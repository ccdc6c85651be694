import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SextantBots
import SextantClient
import SextantEmbedding
import SextantPayload
import SextantSQLite
import SextantTestSupport
import Testing

/// The gateway as users run it: `sextant bots` as a real process against a real
/// engine and the Telegram stand-in (tools/python/telegram_standin.py), bots
/// managed through `sextant bot` and the admin routes.
@Suite(.serialized) struct GatewayTests {
    init() {}
    static let key = "test-key-0123456789abcdef-not-for-production"
    static let goodToken = "1234567:AAGoodTokenForTheTestsOnly_xyz"
    static let badToken = "7654321:BBRejectedTokenForTheTests_abc"

    struct Setup {
        let directory: TemporaryDirectory
        let engine: EngineProcess
        let telegram: BackgroundServer
        var root: String { directory.file("root") }
    }

    /// An engine with a small knowledge base (the hashing embedder, so no model is needed) and the stand-in.
    func setUp() async throws -> Setup {
        let directory = TemporaryDirectory("sextant-bots")
        let engine = try EngineProcess(dataRoot: directory.file("root"))
        let client = try await SextantClient.connect(to: engine.address)
        let embedder = HashingEmbedder()
        let collection = try await client.createCollection(
            name: "kb", dimension: 384, metadata: [EmbedderDescriptor.metadataKey: .string(embedder.descriptor.identifier)])
        let documents = [
            "Installing curl › Usage\nTo install curl run apt-get install curl. curl transfers data with URL syntax (HTTP, FTP).",
            "Git basics › Clone\nUse git clone URL to copy a repository; git pull fetches and merges changes.",
            "Python venv\nCreate a virtual environment with python3 -m venv .venv and activate it (source .venv/bin/activate).",
            "Backups › Restore\nRestore with sextant restore --from s3://bucket/prefix; it verifies every checksum first!",
        ]
        try await collection.upsert(
            ids: ["curl-0", "git-0", "venv-0", "backup-0"], vectors: try await embedder.embed(documents), documents: documents,
            metadatas: [
                ["title": .string("Installing curl"), "url": .string("https://docs.example.org/curl_(tool).html")],
                ["title": .string("Git basics"), "url": .string("https://docs.example.org/git.html")],
                ["title": .string("Python venv"), "url": .string("https://docs.example.org/venv.html")],
                ["title": .string("Backups"), "url": .string("https://docs.example.org/backups.html")],
            ])
        await client.close()
        let telegram = try BackgroundServer(
            python: [TestDataset.packageRoot + "/tools/python/telegram_standin.py", "--port", "{port}"], logPath: directory.file("telegram.log"))
        _ = try await http(.POST, telegram.url + "/control/bots", ["token": Self.goodToken, "username": "kb_bot"])
        return Setup(directory: directory, engine: engine, telegram: telegram)
    }

    final class Gateway {
        let process: Process
        let port: Int
        let logPath: String
        var url: String { "http://127.0.0.1:\(port)" }

        init(_ setup: Setup, root: String? = nil, engine: EngineProcess? = nil, logName: String = "gateway.log", extra: [String] = [],
             environment: [String: String] = [:]) throws {
            port = freePort()
            logPath = setup.directory.file(logName)
            process = try SextantBinary.start(
                ["bots", "--data", root ?? setup.root, "--engine", (engine ?? setup.engine).address, "--listen", "127.0.0.1:\(port)",
                 "--telegram-api", setup.telegram.url, "--poll-seconds", "1", "--watch-ms", "200", "--retry-base-ms", "200"] + extra,
                logPath: logPath, environment: environment.merging(["SEXTANT_BOTS_KEY": GatewayTests.key]) { a, _ in a })
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                if log.contains("admin API listening") { return }
                guard process.isRunning else { break }
                usleep(50_000)
            }
            throw EngineProcessError.exited("gateway did not start: \(log)")
        }

        var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
        func kill9() { process.killHard() }
        deinit { if process.isRunning { process.killHard() } }
    }

    @discardableResult
    func http(_ method: HTTPMethod, _ url: String, _ body: [String: Any]? = nil) async throws -> (Int, Any?) {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 16 << 20)
        let object = bytes.readableBytes == 0 ? nil : try? JSONSerialization.jsonObject(with: Data(bytes.readableBytesView))
        return (Int(response.status.code), object)
    }

    func sent(_ setup: Setup, _ token: String = GatewayTests.goodToken) async throws -> (messages: [[String: Any]], errors: [String]) {
        let (_, object) = try await http(.GET, setup.telegram.url + "/control/sent?token=" + token)
        let dictionary = object as? [String: Any] ?? [:]
        return (dictionary["sent"] as? [[String: Any]] ?? [], dictionary["errors"] as? [String] ?? [])
    }

    func say(_ setup: Setup, _ text: String, chat: Int = 42) async throws {
        try await http(.POST, setup.telegram.url + "/control/message", ["token": Self.goodToken, "chat_id": chat, "text": text])
    }

    /// Waits until the bot has sent `count` messages; returns them.
    func waitForSent(_ setup: Setup, _ count: Int, seconds: Double = 30) async throws -> [[String: Any]] {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let messages = try await sent(setup).messages
            if messages.count >= count { return messages }
            try await Task.sleep(for: .milliseconds(100))
        }
        return try await sent(setup).messages
    }

    func bots(_ gateway: Gateway) async throws -> [[String: Any]] {
        (try await http(.GET, gateway.url + "/v1/bots").1 as? [[String: Any]]) ?? []
    }

    @Test func answersKeepOffsetsAcrossKill9AndPickUpUpdates() async throws {
        let setup = try await setUp()
        defer { setup.telegram.stop(); setup.engine.stop(); setup.directory.remove() }
        var gateway = try Gateway(setup)

        // Bots are added through the CLI; the token comes from a file, never the command line.
        try Self.goodToken.write(toFile: setup.directory.file("good.token"), atomically: true, encoding: .utf8)
        try Self.badToken.write(toFile: setup.directory.file("bad.token"), atomically: true, encoding: .utf8)
        for (name, file) in [("kb_bot", "good.token"), ("broken", "bad.token")] {
            let (status, out, err) = try SextantBinary.run(["bot", "add", "--gateway", gateway.url, "--name", name, "--token-file",
                                                            setup.directory.file(file), "--collection", "kb"])
            #expect(status == 0, "\(out) \(err)")
            #expect(!out.contains(Self.goodToken) && !out.contains(Self.badToken), "the admin API returned a token")
        }

        // /start, then a question: an extractive answer with sources, valid MarkdownV2, a reply to the message.
        try await say(setup, "/start")
        try await say(setup, "how do I install curl?")
        var messages = try await waitForSent(setup, 2)
        #expect(messages.count == 2)
        #expect((messages.first?["text"] as? String)?.contains("Ask me a question") == true)
        let answer = messages.last?["text"] as? String ?? ""
        #expect(answer.contains("apt-get install curl"), "\(answer)")
        #expect(answer.contains("Sources") && answer.contains("1. Installing curl"))
        #expect((messages.last?["markup"] as? String)?.contains("(https://docs.example.org/curl_(tool\\).html)") == true)
        #expect(messages.last?["parse_mode"] as? String == "MarkdownV2")
        #expect(messages.last?["reply_to"] as? Int == 20)
        #expect(try await sent(setup).errors.isEmpty, "Telegram would have refused a reply")

        // The rejected token marks only its own bot failed, with the reason.
        var list = try await bots(gateway)
        let broken = list.first { $0["name"] as? String == "broken" }
        #expect(broken?["status"] as? String == "failed")
        #expect((broken?["last_error"] as? String)?.contains("token rejected") == true)
        #expect(list.first { $0["name"] as? String == "kb_bot" }?["status"] as? String == "running")

        // A 429 with retry_after is waited out; the reply is sent once.
        try await http(.POST, setup.telegram.url + "/control/ratelimit", ["token": Self.goodToken, "count": 2, "retry_after": 1])
        try await say(setup, "git clone")
        messages = try await waitForSent(setup, 3)
        #expect(messages.count == 3 && (messages.last?["text"] as? String)?.contains("git clone") == true)

        // An update that is not a text message moves the offset without a reply.
        try await http(.POST, setup.telegram.url + "/control/other", ["token": Self.goodToken])

        // kill -9 while idle, three messages arrive while it is down, and it starts again:
        // each is answered once; nothing before them is answered again.
        try await Task.sleep(for: .milliseconds(500))
        gateway.kill9()
        for text in ["venv one", "venv two", "venv three"] { try await say(setup, text) }
        gateway = try Gateway(setup, logName: "gateway-2.log")
        messages = try await waitForSent(setup, 6)
        try await Task.sleep(for: .seconds(2))
        messages = try await sent(setup).messages
        #expect(messages.count == 6, "answered \(messages.count) messages, expected 6 (no repeats, none skipped)")
        #expect(messages.suffix(3).map { $0["reply_to"] as? Int } == [50, 60, 70])

        // An update event on the collection restarts the bot between messages; it records the sequence.
        let client = try await SextantClient.connect(to: setup.engine.address)
        let event = try await client.getCollection(name: "kb").publishUpdate(runID: "test-run", source: "scrape", counts: ["chunks_upserted": 1])
        var picked = false
        for _ in 0..<100 where !picked {
            list = try await bots(gateway)
            picked = list.first { $0["name"] as? String == "kb_bot" }?["data_sequence"] as? Int == Int(event.sequence)
            if !picked { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(picked, "the bot did not pick up update \(event.sequence): \(list)")
        #expect(gateway.log.contains("collection kb updated"))
        try await say(setup, "restore from backup")
        messages = try await waitForSent(setup, 7)
        #expect(messages.count == 7 && (messages.last?["text"] as? String)?.contains("sextant restore") == true)
        await client.close()

        // Conversations are stored, each chat's history bounded.
        for index in 0..<12 { try await say(setup, "question \(index)", chat: 7) }
        _ = try await waitForSent(setup, 19)
        let database = try Database(path: setup.root + "/bots/bots.sqlite")
        let turns = try database.query("SELECT COUNT(*) FROM turns WHERE chat_id = '7'").first?.first?.integer ?? 0
        #expect(turns == Int64(BotStore.historyTurnsKept))
        #expect((try database.query("SELECT COUNT(*) FROM turns WHERE chat_id = '42'").first?.first?.integer ?? 0) == 14)

        // Tokens are encrypted at rest and never logged.
        let file = try Data(contentsOf: URL(fileURLWithPath: setup.root + "/bots/bots.sqlite"))
        let wal = (try? Data(contentsOf: URL(fileURLWithPath: setup.root + "/bots/bots.sqlite-wal"))) ?? Data()
        let firstLog = (try? String(contentsOfFile: setup.directory.file("gateway.log"), encoding: .utf8)) ?? ""
        for token in [Self.goodToken, Self.badToken] {
            #expect(file.range(of: Data(token.utf8)) == nil && wal.range(of: Data(token.utf8)) == nil, "a token is stored in clear")
            #expect(!gateway.log.contains(token) && !firstLog.contains(token), "a token reached the log")
        }
        gateway.kill9()
        // The wrong key cannot open them: the gateway refuses to start the bots rather than use garbage.
        let store = try BotStore(path: setup.root + "/bots/bots.sqlite", secrets: try SecretBox(keyText: "another-key-entirely-0123456789"))
        #expect(throws: BotError.self) { try store.token(1) }
    }

    @Test func llmAnswersFallBackToExtractiveOnTimeout() async throws {
        let setup = try await setUp()
        defer { setup.telegram.stop(); setup.engine.stop(); setup.directory.remove() }
        let model = try BackgroundServer(
            python: [TestDataset.packageRoot + "/tools/python/model_standin.py", "--port", "{port}", "--key", "model-key",
                     "--slow-marker", "SLOWLY", "--slow-seconds", "5"],
            logPath: setup.directory.file("model.log"))
        defer { model.stop() }
        let gateway = try Gateway(setup, extra: ["--answer-model", "gemini:standin", "--answer-timeout-ms", "1000"],
                                  environment: ["GEMINI_BASE_URL": model.url, "GEMINI_API_KEY": "model-key"])
        let (status, created) = try await http(.POST, gateway.url + "/v1/bots", [
            "platform": "telegram", "name": "llm_bot", "token": Self.goodToken, "collection": "kb", "answer_style": "llm",
            "system_prompt": "Be brief.",
        ])
        #expect(status == 201 && (created as? [String: Any])?["answer_style"] as? String == "llm")
        try await say(setup, "how do I clone with git?")
        var messages = try await waitForSent(setup, 1)
        let llm = messages.last?["text"] as? String ?? ""
        #expect(llm.contains("LLM answer to 'how do I clone with git?', from [1] Git basics"), "\(llm)")
        #expect(llm.contains("Sources"))
        // The model takes 5 s, the limit is 1 s: the extractive answer goes out instead.
        try await say(setup, "git clone SLOWLY please")
        messages = try await waitForSent(setup, 2)
        let fallback = messages.last?["text"] as? String ?? ""
        #expect(!fallback.contains("LLM answer") && fallback.contains("git clone URL"), "\(fallback)")
        #expect(try await sent(setup).errors.isEmpty)
        _ = gateway
    }

    /// Seed 000's redeploy: back up the whole root, restore it on a fresh disk, start again.
    @Test func enabledBotsStartAgainAfterARestore() async throws {
        let setup = try await setUp()
        defer { setup.telegram.stop(); setup.engine.stop(); setup.directory.remove() }
        var gateway: Gateway? = try Gateway(setup)
        let url = gateway?.url ?? ""
        let (status, _) = try await http(.POST, url + "/v1/bots", [
            "platform": "telegram", "name": "kb_bot", "token": Self.goodToken, "collection": "kb",
        ])
        #expect(status == 201)
        try await say(setup, "curl install")
        #expect(try await waitForSent(setup, 1).count == 1)
        let backups = "file://" + setup.directory.file("backups")
        let (backupStatus, _, backupErr) = try SextantBinary.run(["backup", "--data", setup.root, "--engine", setup.engine.address, "--to", backups])
        #expect(backupStatus == 0, "\(backupErr.suffix(1_000))")
        gateway?.kill9()
        gateway = nil
        setup.engine.stop()

        let restored = setup.directory.file("restored")
        let (restoreStatus, _, restoreErr) = try SextantBinary.run(["restore", "--from", backups, "--data", restored])
        #expect(restoreStatus == 0, "\(restoreErr.suffix(1_000))")
        let engine = try EngineProcess(dataRoot: restored)
        defer { engine.stop() }
        let again = try Gateway(setup, root: restored, engine: engine, logName: "gateway-restored.log")
        try await say(setup, "git clone")
        let messages = try await waitForSent(setup, 2)
        try await Task.sleep(for: .seconds(1))
        #expect(try await sent(setup).messages.count == 2, "the restored gateway repeated or skipped a message")
        #expect((messages.last?["text"] as? String)?.contains("git clone") == true)
        let list = try await bots(again)
        #expect(list.first?["status"] as? String == "running" && list.first?["messages_answered"] as? Int == 2)
    }

    @Test func adminRoutesNeedTheKeyAndRefuseBadInput() async throws {
        let setup = try await setUp()
        defer { setup.telegram.stop(); setup.engine.stop(); setup.directory.remove() }
        let keyFile = setup.directory.file("api.key")
        try "admin-key-for-tests".write(toFile: keyFile, atomically: true, encoding: .utf8)
        let port = freePort()
        let process = try SextantBinary.start(
            ["bots", "--data", setup.root, "--engine", setup.engine.address, "--listen", "127.0.0.1:\(port)", "--api-key-file", keyFile,
             "--telegram-api", setup.telegram.url, "--poll-seconds", "1"],
            logPath: setup.directory.file("gateway.log"), environment: ["SEXTANT_BOTS_KEY": Self.key])
        defer { process.killHard() }
        let url = "http://127.0.0.1:\(port)"
        for _ in 0..<100 where (try? await http(.GET, url + "/healthz"))?.0 != 200 { try await Task.sleep(for: .milliseconds(100)) }
        #expect(try await http(.GET, url + "/v1/bots").0 == 401)
        #expect(try await http(.POST, url + "/v1/bots", ["platform": "telegram"]).0 == 401)
        let (status, out, _) = try SextantBinary.run(["bot", "list", "--gateway", url, "--api-key-file", keyFile])
        #expect(status == 0 && out.contains("[]"))
        // Typed 4xx errors for bad input, through the CLI.
        let (badStatus, badOut, _) = try SextantBinary.run(["bot", "add", "--gateway", url, "--api-key-file", keyFile, "--name", "bad name!",
                                                            "--collection", "kb"])
        #expect(badStatus != 0 && badOut.contains("invalid_argument"))
        // Beyond loopback without a key: refused.
        let (publicStatus, _, publicErr) = try SextantBinary.run(["bots", "--data", setup.root, "--engine", setup.engine.address,
                                                                  "--listen", "0.0.0.0:\(freePort())"],
                                                                 environment: ["SEXTANT_BOTS_KEY": Self.key])
        #expect(publicStatus != 0 && publicErr.contains("api-key-file"))
    }
}
