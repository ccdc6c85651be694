import Foundation
import Logging

/// Progress of one file: a live bar (rows, rows/s, ETA from bytes read) when
/// stderr is a terminal; otherwise one structured log line per batch.
final class ProgressReporter: @unchecked Sendable {
    let name: String
    let totalBytes: Int
    let logger: Logger
    let terminal: Bool
    let start = ContinuousClock.now
    private var lastDraw = ContinuousClock.now - .seconds(1)

    init(name: String, totalBytes: Int, logger: Logger, terminal: Bool = isatty(2) == 1) {
        self.name = name
        self.totalBytes = max(1, totalBytes)
        self.logger = logger
        self.terminal = terminal
    }

    private var elapsedSeconds: Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    func batch(rows: Int, quarantined: Int, bytes: Int) {
        let seconds = max(elapsedSeconds, 1e-6)
        let rate = Double(rows) / seconds
        let fraction = min(1, Double(bytes) / Double(totalBytes))
        let eta = fraction > 0 ? seconds / fraction - seconds : 0
        if terminal {
            let now = ContinuousClock.now
            guard now - lastDraw > .milliseconds(100) || fraction >= 1 else { return }
            lastDraw = now
            let width = 30
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
            let line = String(format: "\r%@ %@ %3.0f%%  %d rows  %.0f rows/s  ETA %.0f s  quarantined %d\u{1B}[K",
                              name, bar, fraction * 100, rows, rate, eta, quarantined)
            FileHandle.standardError.write(Data(line.utf8))
        } else {
            logger.info("batch", metadata: [
                "file": "\(name)", "rows": "\(rows)", "quarantined": "\(quarantined)",
                "rows_per_second": "\(Int(rate))", "percent": "\(Int(fraction * 100))", "eta_seconds": "\(Int(eta))",
            ])
        }
    }

    func done() { if terminal { FileHandle.standardError.write(Data("\n".utf8)) } }
}
