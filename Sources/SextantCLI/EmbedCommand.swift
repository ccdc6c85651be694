import ArgumentParser
import Foundation
import SextantDatasets
import SextantMiniLM

struct EmbedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed", abstract: "Embed one text per line with all-MiniLM-L6-v2 (in Swift) into an fvecs file.")

    @Option(help: "UTF-8 text, one text per line.") var input: String
    @Option(help: "The .fvecs file to write (same order as the lines).") var output: String
    @Option(name: .customLong("max-tokens"), help: "Truncate each text to this many tokens (the model's limit is 256).")
    var maxTokens = 256
    @Option(help: "The model folder (default: $SEXTANT_MINILM_DIR or .models from tools/setup).") var model: String?

    func run() async throws {
        guard let directory = model ?? MiniLMEmbedder.locateModel() else {
            throw ValidationError("all-MiniLM-L6-v2 weights not found: \(MiniLMEmbedder.installHint)")
        }
        let embedder = try MiniLMEmbedder(modelDirectory: directory, maximumTokens: maxTokens)
        guard let text = try? String(contentsOfFile: input, encoding: .utf8) else { throw ValidationError("cannot read \(input) as UTF-8") }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { String($0.hasSuffix("\r") ? $0.dropLast() : $0) }
        if lines.last == "" { lines.removeLast() }
        let terminal = isatty(2) == 1
        let start = ContinuousClock.now
        var vectors: [[Float]] = []
        vectors.reserveCapacity(lines.count)
        for chunkStart in stride(from: 0, to: lines.count, by: 64) {
            vectors += try embedder.embedSync(Array(lines[chunkStart..<min(chunkStart + 64, lines.count)]))
            if terminal {
                let done = vectors.count
                let elapsed = ContinuousClock.now - start
                let seconds = max(1e-6, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
                let rate = Double(done) / seconds
                let width = 30
                let filled = lines.isEmpty ? width : width * done / lines.count
                let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
                FileHandle.standardError.write(Data(String(format: "\r%@ %d/%d  %.0f texts/s  ETA %.0f s\u{1B}[K", bar, done, lines.count,
                                                           rate, Double(lines.count - done) / max(rate, 1e-6)).utf8))
            }
        }
        if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
        try VectorFiles.writeFvecs(output, rows: vectors)
    }
}
