import Foundation
import SextantClient
import SextantSupport
import SextantTestSupport
import Testing

/// TLS between the parts: the engine and the search API with certificates from
/// a private CA (tools/make-certs, as docs/OPERATIONS.md shows), a client
/// with that CA served, a plaintext client and a client trusting another CA
/// refused, and an engine that would serve its token in clear beyond loopback
/// refusing to start.
@Suite(.serialized) struct TLSTests {
    /// A CA and a server certificate it signs for 127.0.0.1 and localhost
    /// (tools/make-certs, as the docs and the compose file use it), and an unrelated CA.
    static func makeCertificates(_ directory: TemporaryDirectory) throws {
        for (folder, name) in [("mine", "engine"), ("other", "elsewhere")] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = [TestDataset.packageRoot + "/tools/make-certs", directory.file(folder), name]
            let (status, out, err) = try CapturedRun.run(process, timeoutSeconds: 60)
            try #require(status == 0, "make-certs: \(out) \(err)")
        }
        for file in ["ca.pem", "server.pem", "server.key"] {
            try FileManager.default.copyItem(atPath: directory.file("mine/" + file), toPath: directory.file(file))
        }
        try FileManager.default.copyItem(atPath: directory.file("other/ca.pem"), toPath: directory.file("other.pem"))
        try "engine-token-123".write(toFile: directory.file("token"), atomically: true, encoding: .utf8)
    }

    @Test func engineAndAPIServeTLSAndRefuseWhatTheyShould() async throws {
        let directory = TemporaryDirectory("sextant-tls")
        defer { directory.remove() }
        try Self.makeCertificates(directory)
        let engine = try EngineProcess(
            dataRoot: directory.file("engine"),
            extraArguments: ["--tls-cert", directory.file("server.pem"), "--tls-key", directory.file("server.key"),
                             "--token-file", directory.file("token")])
        defer { engine.stop() }

        // The right CA and token: served.
        var configuration = ClientConfiguration(address: .tls(host: "127.0.0.1", port: engine.port), token: "engine-token-123")
        configuration.caFile = directory.file("ca.pem")
        configuration.retry = RetryPolicy(attempts: 1, initialDelayMilliseconds: 10, maximumDelayMilliseconds: 10)
        let client = try await SextantClient.connect(configuration)
        let collection = try await client.createCollection(name: "secret", dimension: 4)
        _ = try await collection.add(ids: ["a", "b"], vectors: [[1, 0, 0, 0], [0, 1, 0, 0]], documents: ["over tls", "also"])
        let hits = try await collection.query(vectors: [[1, 0, 0, 0]], k: 1)
        #expect(hits.first?.first?.id == "a")

        // Plaintext to the TLS listener: no answer.
        var plain = ClientConfiguration(address: .tcp(host: "127.0.0.1", port: engine.port), token: "engine-token-123")
        plain.retry = configuration.retry
        plain.timeoutMilliseconds = 3_000
        await #expect(throws: SextantError.self) { _ = try await SextantClient.connect(plain) }

        // A client that trusts another CA does not talk to this engine.
        var wrongCA = configuration
        wrongCA.caFile = directory.file("other.pem")
        wrongCA.timeoutMilliseconds = 3_000
        await #expect(throws: (any Error).self) { _ = try await SextantClient.connect(wrongCA) }

        // Nor one that trusts only the system's store.
        var systemStore = configuration
        systemStore.caFile = nil
        systemStore.timeoutMilliseconds = 3_000
        await #expect(throws: (any Error).self) { _ = try await SextantClient.connect(systemStore) }

        // The search API over HTTPS, talking to the engine over TLS.
        let apiLog = directory.file("api.log")
        let api = try SextantBinary.start(
            ["api", "--data", directory.file("api-data"), "--engine", "tls://127.0.0.1:\(engine.port)", "--engine-ca-file",
             directory.file("ca.pem"), "--token-file", directory.file("token"), "--listen", "127.0.0.1:0",
             "--tls-cert", directory.file("server.pem"), "--tls-key", directory.file("server.key")],
            logPath: apiLog)
        defer { api.killHard() }
        var apiPort: Int? = nil
        let deadline = Date().addingTimeInterval(60)
        while apiPort == nil, Date() < deadline, api.isRunning {
            let log = (try? String(contentsOfFile: apiLog, encoding: .utf8)) ?? ""
            if let range = log.range(of: "search API listening on https://127.0.0.1:") {
                apiPort = Int(log[range.upperBound...].prefix { $0.isNumber })
            }
            usleep(50_000)
        }
        let port = try #require(apiPort, "\((try? String(contentsOfFile: apiLog, encoding: .utf8)) ?? "")")
        let probe = """
            from ssl import create_default_context
            from sys import argv
            from urllib.request import urlopen
            url = argv[1]
            def fetch(context, target=url):
                try:
                    with urlopen(target, context=context, timeout=10) as response:
                        return response.status, response.read().decode()
                except Exception as error:
                    return None, repr(error)
            status, body = fetch(create_default_context(cafile=argv[2]))
            assert status == 200 and '"engine":"reachable"' in body, (status, body)
            status, body = fetch(create_default_context(cafile=argv[3]))
            assert status is None and "CERTIFICATE_VERIFY_FAILED" in body, (status, body)
            status, body = fetch(None, url.replace("https://", "http://"))
            assert status is None, (status, body)
            print("tls checks passed")
            """
        let (status, output) = try TestPython.run(
            "-c", [probe, "https://127.0.0.1:\(port)/readyz", directory.file("ca.pem"), directory.file("other.pem")])
        #expect(status == 0 && output.contains("tls checks passed"), "\(output)")
        await client.close()
    }

    @Test func aTokenInClearBeyondLoopbackIsRefused() throws {
        let directory = TemporaryDirectory("sextant-tls")
        defer { directory.remove() }
        try Self.makeCertificates(directory)
        // Never binds: the check comes before any listener.
        let (status, _, err) = try SextantBinary.run(
            ["engine", "--data", directory.file("engine"), "--listen", "0.0.0.0:0", "--token-file", directory.file("token")])
        #expect(status != 0)
        #expect(err.contains("without TLS"), "\(err)")
        // Half a TLS configuration is refused too.
        let (half, _, halfErr) = try SextantBinary.run(
            ["engine", "--data", directory.file("engine"), "--listen", "127.0.0.1:0", "--tls-cert", directory.file("server.pem")])
        #expect(half != 0)
        #expect(halfErr.contains("both a certificate and a key"), "\(halfErr)")
    }
}
