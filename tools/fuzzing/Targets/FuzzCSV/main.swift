import FuzzDriver
import Foundation
import IngestCSV

/// The CSV reader the ingestion worker streams every inbox file through:
/// any bytes end in records or typed problems, never a trap, within the
/// bounds (a record over them is reported, not kept), and the reader reaches
/// the end of the file.
let path = "/dev/shm/sextant-fuzz-csv-\(getpid()).csv"

func fuzzCSV(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let data = Data(bytes: start, count: count)
    guard FileManager.default.createFile(atPath: path, contents: data) else { return 0 }
    var limits = CSVLimits()
    limits.maximumFieldBytes = 1_024
    limits.maximumRecordBytes = 4_096
    limits.maximumFields = 64
    guard var reader = try? CSVReader(path: path, limits: limits) else { return 0 }
    unlink(path)  // the open reader keeps it; nothing is left behind
    defer { reader.close() }
    var records = 0
    while let record = try? reader.next() {
        records += 1
        precondition(record.problem != nil || record.fields.count <= limits.maximumFields, "a kept record is within the field bound")
        precondition(record.problem != nil || record.fields.allSatisfy { $0.utf8.count <= limits.maximumFieldBytes },
                     "a kept field is within the byte bound")
        precondition(records <= count + 1, "every record consumes input")
    }
    return 0
}

@_cdecl("FuzzCSV_main")
func entry(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    FuzzDriver.run(argc, argv) { data, count in
        guard let data else { return fuzzCSV(UnsafeRawPointer(bitPattern: 1)!, 0) }
        return fuzzCSV(UnsafeRawPointer(data), count)
    }
}
