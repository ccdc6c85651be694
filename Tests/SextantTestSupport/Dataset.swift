import Foundation
@_exported import SextantSupport

/// Locates the shared debian-minilm dataset: $SEXTANT_DATASET, else
/// ../shared/data/debian-minilm next to the checkout, else /work/shared/....
public enum TestDataset {
    public static var debianMiniLM: String {
        if let explicit = ProcessInfo.processInfo.environment["SEXTANT_DATASET"] { return explicit }
        let candidates = [
            packageRoot + "/../shared/data/debian-minilm",
            "/work/shared/data/debian-minilm",
        ]
        return candidates.first { FileManager.default.fileExists(atPath: $0 + "/base.fvecs") } ?? candidates[0]
    }

    public static func file(_ name: String) -> String { debianMiniLM + "/" + name }

    /// The package root, found from this source file's location.
    public static var packageRoot: String {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }
}

/// The tests' deterministic generator: the one the benchmarks, trials and soaks use.
public typealias SeededGenerator = SplitMix64

public func randomVectors(count: Int, dimensions: Int, seed: UInt64) -> [[Float]] {
    var generator = SeededGenerator(seed: seed)
    return (0..<count).map { _ in (0..<dimensions).map { _ in Float.random(in: -1...1, using: &generator) } }
}
