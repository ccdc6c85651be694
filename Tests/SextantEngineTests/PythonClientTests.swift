import Foundation
import SextantTestSupport
import Testing

/// A second client, written in Python from proto/PROTOCOL.md and the .proto,
/// against the real engine: proof that the specification is complete.
@Suite struct PythonClientTests {
    @Test func pythonClientWrittenFromTheSpecWorks() throws {
        let directory = TemporaryDirectory("sextant-engine")
        defer { directory.remove() }
        let engine = try EngineProcess(dataRoot: directory.path)
        defer { engine.stop() }
        let (status, output) = try TestPython.run("tools/python/test_sextant_client.py", ["--engine", engine.address])
        #expect(status == 0, "\(output)\n\(engine.log.suffix(2_000))")
        #expect(output.contains("all checks passed"))
    }

    /// The engine's BM25 top 10 on the 1,000 public queries against an exact
    /// reference in plain Python over chromadb's own tokens, before and after
    /// deletes and rewrites.
    @Test func lexicalSearchEqualsAnExactPythonReference() throws {
        let directory = TemporaryDirectory("sextant-engine")
        defer { directory.remove() }
        let engine = try EngineProcess(dataRoot: directory.path)
        defer { engine.stop() }
        let (status, output) = try TestPython.run(
            "tools/python/test_bm25_exact.py", ["--engine", engine.address, "--data", TestDataset.debianMiniLM, "--records", "6000"])
        #expect(status == 0, "\(output)\n\(engine.log.suffix(2_000))")
        #expect(output.contains("all checks passed"))
    }
}
