import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SextantTestSupport
import Testing

/// Discord bots through the gateway process against the Discord stand-in
/// (tools/python/discord_standin.py: Gateway v10 over WebSocket and REST).
@Suite(.serialized) struct DiscordTests {
    static let token = "discord-good-token-for-tests.only"

    @Test func mentionsAndDirectMessagesAnsweredWithResumeAndRateLimits() async throws {
        let helper = GatewayTests()
        let setup = try await helper.setUp()
        defer { setup.telegram.stop(); setup.engine.stop(); setup.directory.remove() }
        let discord = try BackgroundServer(
            python: [TestDataset.packageRoot + "/tools/python/discord_standin.py", "--port", "{port}", "--heartbeat-ms", "500",
                     "--bucket-limit", "3", "--bucket-seconds", "1"],
            logPath: setup.directory.file("discord.log"))
        defer { discord.stop() }
        try await helper.http(.POST, discord.url + "/control/bots", ["token": Self.token, "username": "kb", "user_id": "900"])
        let extra = ["--discord-api", discord.url + "/api/v10"]
        var gateway = try GatewayTests.Gateway(setup, extra: extra)
        for (name, token) in [("kb_discord", Self.token), ("bad_discord", "not-a-registered-token")] {
            let (status, _) = try await helper.http(.POST, gateway.url + "/v1/bots", [
                "platform": "discord", "name": name, "token": token, "collection": "kb",
            ])
            #expect(status == 201)
        }

        func sent() async throws -> [String: Any] {
            (try await helper.http(.GET, discord.url + "/control/sent?token=" + Self.token).1 as? [String: Any]) ?? [:]
        }
        func messages() async throws -> [[String: Any]] { (try await sent())["sent"] as? [[String: Any]] ?? [] }
        func waitFor(_ count: Int, seconds: Double = 20) async throws -> [[String: Any]] {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                let list = try await messages()
                if list.count >= count { return list }
                try await Task.sleep(for: .milliseconds(100))
            }
            return try await messages()
        }
        func post(_ content: String, channel: String = "c1", guild: String? = "g1", mention: Bool = false) async throws {
            var body: [String: Any] = ["token": Self.token, "channel_id": channel, "content": content, "mention": mention]
            if let guild { body["guild_id"] = guild }
            try await helper.http(.POST, discord.url + "/control/message", body)
        }
        var running = false
        for _ in 0..<100 where !running {
            let list = try await helper.bots(gateway)
            running = list.first { $0["name"] as? String == "kb_discord" }?["status"] as? String == "running"
            if !running { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(running)

        // A guild message without a mention is not for the bot; a mention and a direct message are.
        try await post("how do I install curl?")
        try await post("how do I install curl?", mention: true)
        try await post("git clone", channel: "dm1", guild: nil)
        var list = try await waitFor(2)
        try await Task.sleep(for: .milliseconds(500))
        list = try await messages()
        #expect(list.count == 2, "\(list)")
        let first = list.first?["content"] as? String ?? ""
        #expect(first.contains("apt-get install curl") && first.contains("**Sources**") && first.contains("<https://docs.example.org/curl_(tool).html>"),
                "\(first)")
        #expect(list.first?["reply_to"] as? String == "1002")
        #expect(list.last?["channel_id"] as? String == "dm1" && (list.last?["content"] as? String)?.contains("git clone URL") == true)

        // The rejected token fails only its own bot.
        let bad = try await helper.bots(gateway).first { $0["name"] as? String == "bad_discord" }
        #expect(bad?["status"] as? String == "failed" && (bad?["last_error"] as? String)?.contains("token rejected") == true)

        // A dropped connection resumes the session; messages sent meanwhile are replayed and answered once.
        try await helper.http(.POST, discord.url + "/control/drop", ["token": Self.token])
        try await post("venv please", channel: "dm1", guild: nil)
        try await post("restore from backup", channel: "dm1", guild: nil)
        list = try await waitFor(4)
        try await Task.sleep(for: .milliseconds(500))
        var state = try await sent()
        #expect((state["sent"] as? [Any])?.count == 4)
        #expect(state["resumes"] as? Int == 1 && state["identifies"] as? Int == 1, "\(state)")

        // Six replies in a burst to one channel whose bucket allows 3 a second: the bot waits, never hits the wall;
        // one 429 with retry_after is waited out.
        try await helper.http(.POST, discord.url + "/control/ratelimit", ["token": Self.token, "count": 1, "retry_after": 0.3])
        for index in 0..<6 { try await post("curl question \(index)", channel: "burst", guild: nil) }
        list = try await waitFor(10, seconds: 30)
        state = try await sent()
        #expect(list.count == 10)
        #expect(state["violations"] as? Int == 0, "requests sent into an empty rate-limit bucket: \(state["violations"] ?? "?")")

        // kill -9, a message while it is down, start again: the stored session resumes, the message is answered once.
        try await Task.sleep(for: .milliseconds(300))
        gateway.kill9()
        try await post("git pull", channel: "dm1", guild: nil)
        gateway = try GatewayTests.Gateway(setup, logName: "gateway-2.log", extra: extra)
        list = try await waitFor(11)
        try await Task.sleep(for: .seconds(1))
        state = try await sent()
        #expect((state["sent"] as? [Any])?.count == 11, "expected 11 replies, no repeats: \(state["sent"] ?? [])")
        #expect(state["resumes"] as? Int == 2 && state["identifies"] as? Int == 1, "resumes \(state["resumes"] ?? "?"), identifies \(state["identifies"] ?? "?")")
        #expect(!gateway.log.contains(Self.token))
    }
}
