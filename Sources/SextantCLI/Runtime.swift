import ArgumentParser
import CJemalloc
import SextantKernels
import SextantStorage

/// Facts about the running process that operators and tests check.
enum Runtime {
    static let version = "0.1.0"

    /// jemalloc's version as reported by jemalloc itself: proof that it is the
    /// allocator this process actually uses, not merely a library on disk.
    static var allocator: String {
        var pointer: UnsafePointer<CChar>? = nil
        var size = MemoryLayout<UnsafePointer<CChar>?>.size
        guard mallctl("version", &pointer, &size, nil, 0) == 0, let pointer else { return "system malloc" }
        return "jemalloc " + String(cString: pointer)
    }

    /// Bytes the allocator has handed out (jemalloc's stats.allocated).
    static var allocatedBytes: Int? {
        var epochOut: UInt64 = 0
        var epochIn: UInt64 = 1
        var epochSize = MemoryLayout<UInt64>.size
        _ = mallctl("epoch", &epochOut, &epochSize, &epochIn, epochSize)  // refreshes the statistics
        var allocated = 0
        var size = MemoryLayout<Int>.size
        return mallctl("stats.allocated", &allocated, &size, nil, 0) == 0 ? allocated : nil
    }

    static var kernels: String {
        let supported = DistanceKernels.supportedLevels.map(\.rawValue).joined(separator: ", ")
        return "\(DistanceKernels.selected.level.rawValue) (supported: \(supported))"
    }

    static var startupLine: String {
        "sextant \(version); allocator: \(allocator); kernels: \(kernels); wal io: \(DurableIO.shared.backend.rawValue)"
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print version, allocator, kernels and WAL I/O backend.")

    func run() {
        print("sextant \(Runtime.version)")
        print("allocator: \(Runtime.allocator)")
        print("kernels: \(Runtime.kernels)")
        print("wal io: \(DurableIO.shared.backend.rawValue)")
    }
}
