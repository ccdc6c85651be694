import Foundation
import SextantTestSupport
import Testing

@Suite struct RuntimeTests {
    /// The engine executable must allocate through jemalloc (asked of jemalloc itself via mallctl).
    @Test func executableRunsOnJemallocAndReportsItsRuntime() throws {
        let (status, output, _) = try SextantBinary.run(["version"])
        #expect(status == 0)
        #expect(output.contains("allocator: jemalloc 5."), "\(output)")
        #expect(output.contains("kernels: "))
        #expect(output.contains("wal io: io_uring") || output.contains("wal io: pwrite+fdatasync"))
        let (forced, fallback, _) = try SextantBinary.run(["version"], environment: ["SEXTANT_WAL_IO": "sync", "SEXTANT_KERNELS": "scalar"])
        #expect(forced == 0)
        #expect(fallback.contains("wal io: pwrite+fdatasync"))
        #expect(fallback.contains("kernels: scalar"))
    }
}
