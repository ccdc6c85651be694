import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Where storage says what it did (recovery, fallbacks). The engine points it at its logger.
public enum StorageLog {
    nonisolated(unsafe) private static var sink: (@Sendable (String) -> Void)? = nil
    private static let lock = Mutex<Void>(())

    public static func setSink(_ newSink: @escaping @Sendable (String) -> Void) {
        lock.withLock { _ in sink = newSink }
    }

    public static func write(_ message: String) {
        let current = lock.withLock { _ in sink }
        if let current {
            current(message)
        } else {
            let line = Array((message + "\n").utf8)
            _ = line.withUnsafeBytes { Glibc.write(2, $0.baseAddress, $0.count) }
        }
    }
}
