import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The soak's running children. An interrupted soak (Ctrl-C, SIGTERM) takes
/// them down with it rather than leaving an engine holding its port and data.
public enum SoakChildren {
    static let running = Mutex<Set<Int32>>([])
    nonisolated(unsafe) private static var sources: [any DispatchSourceSignal] = []

    /// On SIGINT or SIGTERM: SIGTERM every child, then exit with 128 + the signal.
    public static func stopOnSignals() {
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                let pids = running.withLock { $0 }
                for pid in pids { kill(pid, SIGTERM) }
                let deadline = Date().addingTimeInterval(60)
                while Date() < deadline, pids.contains(where: { kill($0, 0) == 0 && !isZombie($0) }) { usleep(50_000) }
                exit(128 + number)
            }
            source.resume()
            sources.append(source)
        }
    }

    private static func isZombie(_ pid: Int32) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: "/proc/\(pid)/stat"), let data = try? handle.readToEnd() else { return true }
        try? handle.close()
        let text = String(decoding: data, as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return true }
        return text[text.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }
}

/// A `sextant` part the soak runs as its own process, as it runs in
/// production: its memory is then the kernel's figure for that process alone,
/// not mixed with the load generator's.
final class ChildProcess: @unchecked Sendable {
    let process: Process
    let logPath: String
    let label: String

    /// Starts `executable arguments`, output to `logPath`, and waits for a
    /// log line containing `marker` that ends in ":PORT"; returns with that port.
    init(label: String, executable: String, arguments: [String], logPath: String, marker: String,
         timeoutSeconds: Double = 120) throws {
        self.label = label
        self.logPath = logPath
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try? handle.close()
        let pid = process.processIdentifier
        SoakChildren.running.withLock { _ = $0.insert(pid) }
        port = 0
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while Date() < deadline {
            if let line = log.split(separator: "\n").first(where: { $0.contains(marker) }),
                let port = line.split(separator: ":").last.flatMap({ Int($0.trimmingCharacters(in: .whitespaces)) })
            {
                self.port = port
                return
            }
            guard process.isRunning else { throw SoakError.engine("\(label) exited while starting:\n\(log.suffix(4_000))") }
            usleep(20_000)
        }
        stop()
        throw SoakError.engine("\(label) did not report '\(marker)' within \(Int(timeoutSeconds)) s:\n\(log.suffix(4_000))")
    }

    private(set) var port: Int
    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// SIGTERM, then SIGKILL after `timeoutSeconds`. Polls `isRunning`, never
    /// `waitUntilExit()` (on Linux it can miss an exit after many children).
    /// Returns the exit status, or nil when the process had to be killed.
    @discardableResult
    func stop(timeoutSeconds: Double = 120) -> Int32? {
        let pid = process.processIdentifier
        defer { if !process.isRunning { SoakChildren.running.withLock { _ = $0.remove(pid) } } }
        guard process.isRunning else { return process.terminationStatus }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        guard process.isRunning else { return process.terminationStatus }
        kill(process.processIdentifier, SIGKILL)
        let killed = Date().addingTimeInterval(30)
        while process.isRunning && Date() < killed { usleep(10_000) }
        return nil
    }

    deinit { if process.isRunning { stop(timeoutSeconds: 30) } }
}

/// Resident memory of a process, from /proc/PID/status.
struct ResidentMemory: Sendable, Codable, Equatable {
    /// VmRSS: everything resident, mapped files included.
    var totalBytes = 0
    /// RssAnon: the heap and anonymous maps (what a leak grows).
    var anonymousBytes = 0
    /// RssFile: pages of mapped files (vectors, graph, checkpoints), reclaimable by the kernel.
    var fileBytes = 0

    static func of(pid: Int32) -> ResidentMemory {
        guard let handle = FileHandle(forReadingAtPath: "/proc/\(pid)/status"),
            let data = try? handle.readToEnd()
        else { return ResidentMemory() }
        try? handle.close()
        var memory = ResidentMemory()
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let fields = line.split(omittingEmptySubsequences: true) { $0 == " " || $0 == "\t" }
            guard fields.count >= 2, let kilobytes = Int(fields[1]) else { continue }
            switch fields[0] {
            case "VmRSS:": memory.totalBytes = kilobytes * 1_024
            case "RssAnon:": memory.anonymousBytes = kilobytes * 1_024
            case "RssFile:": memory.fileBytes = kilobytes * 1_024
            default: break
            }
        }
        return memory
    }
}

/// Bytes of the regular files under a folder (what the data costs on disk).
func treeBytes(_ root: String, excluding excluded: Set<String> = []) -> Int {
    guard let enumerator = FileManager.default.enumerator(atPath: root) else { return 0 }
    var total = 0
    while let relative = enumerator.nextObject() as? String {
        if let first = relative.split(separator: "/").first, excluded.contains(String(first)) {
            enumerator.skipDescendants()
            continue
        }
        var info = stat()
        if lstat(root + "/" + relative, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG {
            total += Int(info.st_blocks) * 512
        }
    }
    return total
}
