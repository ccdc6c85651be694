import Foundation
import SextantTestSupport
import Testing

/// The real `sextant engine`, and SQLite as the services open it, on a FUSE file system that keeps unsynced file
/// data only in its own memory (tools/crash/volatile_fs.py): killing that
/// process is a power cut. Every acknowledged write must survive it; and when
/// the file system's fsync lies, the check must notice.
@Suite struct PowerLossEndToEndTests {
    @Test func acknowledgedWritesSurvivePowerCutsOfTheRealEngine() throws {
        let (status, output) = try TestPython.run(
            "tools/crash/fuse_power_loss.py", ["--trials", "6", "--seed", "\(Int(Date().timeIntervalSince1970))"], timeoutSeconds: 300)
        #expect(status == 0, "\(output.suffix(3_000))")
        #expect(output.contains("0 failed"), "\(output.suffix(3_000))")
    }

    @Test func aFileSystemWhoseFsyncLiesIsCaught() throws {
        let (status, output) = try TestPython.run(
            "tools/crash/fuse_power_loss.py", ["--trials", "2", "--seed", "2"],
            environment: ["SEXTANT_VOLATILE_FS_FSYNC_LIES": "1"], timeoutSeconds: 300)
        #expect(status == 1, "\(output.suffix(3_000))")
        #expect(output.contains("FAILED"), "\(output.suffix(3_000))")
        #expect(output.contains("sqlite:"), "the SQLite side loses commits too: \(output.suffix(3_000))")
    }
}
