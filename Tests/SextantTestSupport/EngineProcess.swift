import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A real `sextant engine` process on a free loopback port, for tests.
public final class EngineProcess: @unchecked Sendable {
    public let process: Process
    public let dataRoot: String
    public let port: Int
    public let logPath: String
    public var address: String { "127.0.0.1:\(port)" }

    /// Starts an engine and waits until it listens. `extraArguments` go to `sextant engine`.
    public init(dataRoot: String, extraArguments: [String] = [], environment: [String: String] = [:]) throws {
        self.dataRoot = dataRoot
        logPath = dataRoot + "/engine-\(UUID().uuidString.prefix(8)).log"
        try FileManager.default.createDirectory(atPath: dataRoot, withIntermediateDirectories: true)
        process = try SextantBinary.start(
            ["engine", "--data", dataRoot, "--listen", "127.0.0.1:0"] + extraArguments, logPath: logPath, environment: environment)
        port = try Self.waitForPort(logPath, process: process)
    }

    static func waitForPort(_ logPath: String, process: Process) throws -> Int {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            if let line = log.split(separator: "\n").first(where: { $0.contains("listening on [IPv4]") }),
                let port = line.split(separator: ":").last.flatMap({ Int($0.trimmingCharacters(in: .whitespaces)) })
            {
                return port
            }
            guard process.isRunning else { throw EngineProcessError.exited(log) }
            usleep(20_000)
        }
        throw EngineProcessError.timedOut((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "")
    }

    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// SIGTERM and wait; returns the exit status.
    @discardableResult
    public func stop() -> Int32 {
        guard process.isRunning else { return process.terminationStatus }
        kill(process.processIdentifier, SIGTERM)
        // A graceful stop that hangs is a failure (status -9 or -1), not a stalled suite.
        guard process.waitForExit(timeoutSeconds: 120) else { return -9 }
        return process.exitStatus
    }

    public func kill9() { process.killHard() }

    deinit { if process.isRunning { process.killHard() } }
}

public enum EngineProcessError: Error, CustomStringConvertible {
    case exited(String)
    case timedOut(String)
    public var description: String {
        switch self {
        case .exited(let log): return "engine exited during start-up:\n\(log)"
        case .timedOut(let log): return "engine did not start listening:\n\(log)"
        }
    }
}

/// Raises this process's open-file limit (tests that open thousands of sockets).
public func raiseOpenFileLimit() {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
    limit.rlim_cur = limit.rlim_max
    setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
}

/// A blocking loopback TCP socket for byte-level protocol tests.
public final class RawSocket {
    public let fd: Int32

    public init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw EngineProcessError.exited("socket() failed: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            close(fd)
            throw EngineProcessError.exited("connect failed: errno \(errno)")
        }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    public func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            if written <= 0 { return }
            offset += written
        }
    }

    /// Reads up to `count` bytes (fewer if the peer closes); nil on timeout with nothing read.
    public func receive(_ count: Int) -> [UInt8]? {
        var out = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: count)
        while out.count < count {
            let got = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, count - out.count) }
            if got < 0 { return out.isEmpty ? nil : out }
            if got == 0 { break }
            out.append(contentsOf: buffer[0..<got])
        }
        return out
    }

    /// True if the server closed the connection (reads EOF within the timeout).
    public func isClosedByPeer() -> Bool {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let got = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, 4096) }
            if got == 0 { return true }
            if got < 0 { return errno == ECONNRESET }
        }
    }
}

/// A free loopback TCP port (bound and released; tests start servers on it at once).
public func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// `sextant up` as a real process: engine and API as its children.
public final class UpProcess: @unchecked Sendable {
    public let process: Process
    public let dataRoot: String
    public let enginePort: Int
    public let apiPort: Int
    public let logPath: String
    public var apiURL: String { "http://127.0.0.1:\(apiPort)" }
    public var engineAddress: String { "127.0.0.1:\(enginePort)" }

    public init(dataRoot: String, extraArguments: [String] = [], environment: [String: String] = [:]) throws {
        self.dataRoot = dataRoot
        enginePort = freePort()
        apiPort = freePort()
        logPath = dataRoot + "-up.log"
        process = try SextantBinary.start(
            ["up", "--data", dataRoot, "--engine-listen", "127.0.0.1:\(enginePort)", "--api-listen", "127.0.0.1:\(apiPort)",
             "--demo-data", TestDataset.packageRoot + "/tools/demo/debian-sample.jsonl.gz"] + extraArguments,
            logPath: logPath, environment: environment)
        try waitFor("Sextant is up.", timeoutSeconds: 120)
    }

    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    public func waitFor(_ text: String, timeoutSeconds: Double = 30) throws {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while Date() < deadline {
            if log.contains(text) { return }
            guard process.isRunning else { throw EngineProcessError.exited(log) }
            usleep(50_000)
        }
        throw EngineProcessError.timedOut("waiting for '\(text)':\n\(log)")
    }

    /// The pid of a child, from the supervisor's "started NAME (pid N)" lines (the latest).
    public func childPID(_ name: String) -> Int32? {
        log.split(separator: "\n").reversed().lazy.compactMap { line -> Int32? in
            guard let range = line.range(of: "started \(name) (pid ") else { return nil }
            return Int32(line[range.upperBound...].prefix { $0.isNumber })
        }.first
    }

    @discardableResult
    public func stop() -> Int32 {
        guard process.isRunning else { return process.terminationStatus }
        kill(process.processIdentifier, SIGTERM)
        // A graceful stop that hangs is a failure (status -9 or -1), not a stalled suite.
        guard process.waitForExit(timeoutSeconds: 120) else { return -9 }
        return process.exitStatus
    }

    deinit {
        if process.isRunning { stop() }
    }
}
