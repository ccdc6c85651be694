import Foundation
import SextantTestSupport
import Testing

/// tools/check-architecture against deliberately broken copies of the tree:
/// each rule it enforces must fail when broken.
@Suite struct ArchitectureCheckTests {
    /// The package's dump, made once for every case (`swift package dump-package`).
    static let dump: String = {
        let path = TemporaryDirectory("sextant-arch-dump").file("package.json")
        // Its own scratch path: the test runner holds the lock on the package's .build.
        let scratch = TemporaryDirectory("sextant-arch-scratch")
        defer { scratch.remove() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["swift", "package", "--scratch-path", scratch.path, "dump-package"]
        process.currentDirectoryURL = URL(fileURLWithPath: TestDataset.packageRoot)
        let output = (try? CapturedRun.run(process, timeoutSeconds: 120))?.1 ?? ""
        FileManager.default.createFile(atPath: path, contents: Data(output.utf8))
        return path
    }()

    /// A copy of Sources/, Tests/ and docs/ARCHITECTURE.md, changed by `breaking`;
    /// returns the checker's exit status and what it printed.
    func check(breaking: (String) throws -> Void) throws -> (Int32, String) {
        let copy = TemporaryDirectory("sextant-arch-copy")
        defer { copy.remove() }
        let root = TestDataset.packageRoot
        try FileManager.default.createDirectory(atPath: copy.file("docs"), withIntermediateDirectories: true)
        for folder in ["Sources", "Tests"] { try FileManager.default.copyItem(atPath: root + "/" + folder, toPath: copy.file(folder)) }
        try FileManager.default.copyItem(atPath: root + "/docs/ARCHITECTURE.md", toPath: copy.file("docs/ARCHITECTURE.md"))
        try breaking(copy.path)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: root + "/tools/check-architecture")
        process.arguments = ["--root", copy.path, "--dump", Self.dump]
        let (status, out, err) = try CapturedRun.run(process, timeoutSeconds: 120)
        return (status, out + err)
    }

    @Test func theTreeAsItIsPasses() throws {
        let (status, output) = try check { _ in }
        #expect(status == 0, "\(output)")
    }

    @Test func anUndeclaredImportFails() throws {
        // The engine reaching the index through storage, without declaring it.
        let (status, output) = try check { root in
            let file = root + "/Sources/SextantEngine/Router.swift"
            let text = try String(contentsOfFile: file, encoding: .utf8)
            try ("import SextantIndex\n" + text).write(toFile: file, atomically: true, encoding: .utf8)
        }
        #expect(status != 0)
        #expect(output.contains("Sources/SextantEngine/Router.swift imports SextantIndex, which target SextantEngine does not declare"),
                "\(output)")
    }

    @Test func aModuleTableNamingAModuleThePackageLacksFails() throws {
        let (status, output) = try check { root in
            let file = root + "/docs/ARCHITECTURE.md"
            let text = try String(contentsOfFile: file, encoding: .utf8)
            let row = "| `CLibUring` | system module: liburing | liburing |\n"
            try text.replacingOccurrences(of: "| `CJemalloc` |", with: row + "| `CJemalloc` |").write(
                toFile: file, atomically: true, encoding: .utf8)
        }
        #expect(status != 0)
        #expect(output.contains("names CLibUring, which Package.swift lacks"), "\(output)")
    }

    @Test func aModuleTableMissingAModuleFails() throws {
        let (status, output) = try check { root in
            let file = root + "/docs/ARCHITECTURE.md"
            let lines = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
            try lines.filter { !$0.hasPrefix("| `SextantSupport` |") }.joined(separator: "\n").write(
                toFile: file, atomically: true, encoding: .utf8)
        }
        #expect(status != 0)
        #expect(output.contains("misses SextantSupport, which Package.swift has"), "\(output)")
    }
}
