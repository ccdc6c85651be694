import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A fresh folder under /tmp, removed by `remove()`.
public struct TemporaryDirectory: Sendable {
    public let path: String

    public init(_ label: String = "sextant-test") {
        var template = Array("/tmp/\(label)-XXXXXX".utf8CString)
        let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(created != nil, "mkdtemp failed")
        path = String(cString: template)
    }

    public func remove() { try? FileManager.default.removeItem(atPath: path) }
    public func file(_ name: String) -> String { path + "/" + name }
}

/// The release `sextant` binary the suite drives as a real process ($SEXTANT_BIN
/// overrides; tools/test builds it before running the tests).
public enum SextantBinary {
    public static var path: String {
        if let explicit = ProcessInfo.processInfo.environment["SEXTANT_BIN"] { return explicit }
        for configuration in ["release", "debug"] {
            let candidate = TestDataset.packageRoot + "/.build/\(configuration)/sextant"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return TestDataset.packageRoot + "/.build/release/sextant"
    }

    /// Starts `sextant` with `arguments`; output goes to `logPath` (or is discarded).
    public static func start(_ arguments: [String], logPath: String? = nil, environment: [String: String] = [:]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        var merged = ProcessInfo.processInfo.environment
        for (key, value) in environment { merged[key] = value }
        process.environment = merged
        if let logPath {
            FileManager.default.createFile(atPath: logPath, contents: nil)
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
            process.standardOutput = handle
            process.standardError = handle
        } else {
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
        }
        try process.run()
        return process
    }

    /// Runs `sextant` to completion, returning (exit status, stdout, stderr).
    /// Output goes through temporary files, not pipes: a pipe's write end
    /// leaks into any process another test spawns at the same moment, and
    /// reading to end-of-file would then wait for that unrelated process.
    public static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> (Int32, String, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        var merged = ProcessInfo.processInfo.environment
        for (key, value) in environment { merged[key] = value }
        process.environment = merged
        let (status, out, err) = try CapturedRun.run(process)
        return (status, out, err)
    }
}

/// Runs a process with stdout and stderr captured in temporary files.
public enum CapturedRun {
    public static func run(_ process: Process, timeoutSeconds: Double = 900) throws -> (Int32, String, String) {
        let directory = TemporaryDirectory("sextant-run")
        defer { directory.remove() }
        let outPath = directory.file("stdout")
        let errPath = directory.file("stderr")
        FileManager.default.createFile(atPath: outPath, contents: nil)
        FileManager.default.createFile(atPath: errPath, contents: nil)
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        let err = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { process.killHard() }
        try? out.close()
        try? err.close()
        let stdout = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        return (process.exitStatus, stdout, stderr)
    }
}

extension Process {
    /// Waits for the process to exit, by polling `isRunning`, for at most
    /// `timeoutSeconds`, then SIGKILLs it. Never `waitUntilExit()`: that spins
    /// a run loop on the calling thread and, on Linux, after hundreds of child
    /// processes it can miss an exit and wait forever, which stalls the whole
    /// suite instead of failing one test. Returns false when it had to kill.
    @discardableResult
    public func waitForExit(timeoutSeconds: Double = 120) -> Bool {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while isRunning && Date() < deadline { usleep(5_000) }
        guard isRunning else { return true }
        kill(processIdentifier, SIGKILL)
        let killed = Date().addingTimeInterval(30)
        while isRunning && Date() < killed { usleep(5_000) }
        return false
    }

    /// The exit status, or -1 while Foundation still reports the process running.
    public var exitStatus: Int32 { isRunning ? -1 : terminationStatus }

    /// SIGKILL and reap.
    public func killHard() {
        kill(processIdentifier, SIGKILL)
        waitForExit(timeoutSeconds: 30)
    }
}

/// The test virtualenv's Python (tools/python-env creates it; tools/test runs that first).
public enum TestPython {
    public static var path: String { TestDataset.packageRoot + "/.venv-test/bin/python" }
    /// The full chromadb package's virtualenv (its Search API client and BM25 function).
    public static var chromaPath: String { TestDataset.packageRoot + "/.venv-chroma/bin/python" }

    /// Runs a Python script from tools/python with arguments; returns (status, combined output).
    public static func run(_ script: String, _ arguments: [String], environment: [String: String] = [:],
                           timeoutSeconds: Double = 600, python: String = TestPython.path) throws -> (Int32, String) {
        let path = python
        guard FileManager.default.isExecutableFile(atPath: path) else {
            return (127, "no test virtualenv at \(path): run tools/python-env (tools/test does)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = [script.hasPrefix("/") || script.hasPrefix("-") ? script : TestDataset.packageRoot + "/" + script] + arguments
        var merged = ProcessInfo.processInfo.environment
        for (key, value) in environment { merged[key] = value }
        process.environment = merged
        let (status, out, err) = try CapturedRun.run(process, timeoutSeconds: timeoutSeconds)
        return (status, out + err)
    }
}

/// A helper server (moto, http.server, the model stand-in) run from the test
/// virtualenv's Python on a free loopback port; killed when released.
public final class BackgroundServer: @unchecked Sendable {
    public let process: Process
    public let port: Int
    public let logPath: String
    public var url: String { "http://127.0.0.1:\(port)" }

    /// `arguments` may contain "{port}", replaced by the chosen port.
    public init(python arguments: [String], directory: String? = nil, logPath: String, environment: [String: String] = [:],
                interpreter: String = TestPython.path) throws {
        let port = freePort()
        self.port = port
        self.logPath = logPath
        let process = Process()
        process.executableURL = URL(fileURLWithPath: interpreter)
        process.arguments = arguments.map { $0.replacingOccurrences(of: "{port}", with: "\(port)") }
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        var merged = ProcessInfo.processInfo.environment
        for (key, value) in environment { merged[key] = value }
        process.environment = merged
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        self.process = process
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if (try? RawSocket(port: port)) != nil { return }
            guard process.isRunning else { break }
            usleep(50_000)
        }
        let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        if process.isRunning { process.killHard() }
        throw EngineProcessError.exited("helper server \(arguments.first ?? "") did not start: \(log.suffix(2_000))")
    }

    public func stop() { if process.isRunning { process.killHard() } }
    deinit { stop() }
}

/// A real S3-compatible server (moto, from the test virtualenv) on a free
/// loopback port, and the AWS environment that points `sextant` processes and
/// `S3Settings(environment:)` at it.
public final class MotoServer: @unchecked Sendable {
    public let server: BackgroundServer
    public var url: String { server.url }
    public var environment: [String: String] {
        ["AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret", "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": url]
    }

    public init(logPath: String) throws {
        server = try BackgroundServer(python: ["-m", "moto.server", "-H", "127.0.0.1", "-p", "{port}"], logPath: logPath)
    }

    public func stop() { server.stop() }
}
