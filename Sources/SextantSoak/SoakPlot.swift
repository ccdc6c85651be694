import Foundation

/// The soak's per-day figures as a PNG, drawn by gnuplot from the CSV (tools/setup
/// installs gnuplot-nox for the test suite). Nil when gnuplot is missing or fails:
/// the CSV holds every figure either way.
enum SoakPlot {
    static func gnuplot() -> String? {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let candidate = String(directory) + "/gnuplot"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Columns of FeedSoak's CSV: 1 day, 7 live, 9 dead slots, 12 disk, 13 WAL,
    /// 14 checkpoint, 15 RSS, 16 anonymous RSS, 20 p50, 21 p99, 22 recall@10.
    static func draw(csv: String, png: String, title: String) -> String? {
        let script = """
            set terminal pngcairo size 1400,1000 font ",10" noenhanced
            set output '\(png)'
            set datafile separator ','
            set key top left
            set grid
            set xlabel 'simulated day'
            set multiplot layout 2,2 title '\(title.replacingOccurrences(of: "'", with: ""))'
            set title 'records'
            set format y '%.1s%c'
            plot '\(csv)' every ::1 using 1:7 with linespoints title 'live', '' every ::1 using 1:9 with linespoints title 'dead slots awaiting reuse'
            set title 'bytes (GiB)'
            set format y '%.2f'
            plot '\(csv)' every ::1 using 1:($12/1073741824) with linespoints title 'disk', '' every ::1 using 1:($15/1073741824) with linespoints title 'engine RSS', '' every ::1 using 1:($16/1073741824) with linespoints title 'anonymous RSS', '' every ::1 using 1:($13/1073741824) with linespoints title 'WAL'
            set title 'query latency (ms) of the query clients during the day'
            set format y '%.1f'
            plot '\(csv)' every ::1 using 1:20 with linespoints title 'p50', '' every ::1 using 1:21 with linespoints title 'p99'
            set title 'recall@10 against exact ground truth of the live set'
            set format y '%.3f'
            set yrange [0.9:1]
            plot '\(csv)' every ::1 using 1:22 with linespoints title 'recall@10', 0.95 with lines dashtype 2 title 'target'
            unset multiplot
            """
        return run(script, png: png)
    }

    static func run(_ script: String, png: String) -> String? {
        guard let gnuplot = gnuplot() else { return nil }
        let scriptPath = png + ".gp"
        guard (try? script.write(toFile: scriptPath, atomically: true, encoding: .utf8)) != nil else { return nil }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: gnuplot)
        process.arguments = [scriptPath]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return nil }
        let deadline = Date().addingTimeInterval(60)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { process.terminate() }
        guard !process.isRunning, process.terminationStatus == 0, FileManager.default.fileExists(atPath: png) else { return nil }
        return png
    }
}
