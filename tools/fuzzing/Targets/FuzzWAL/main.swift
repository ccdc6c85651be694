import FuzzDriver
import SextantStorage

/// A write-ahead log segment as recovery reads it: the scanner stops at the
/// first damaged frame, and a batch payload inside a frame whose checksum
/// holds (so the fuzzer reaches the batch decoder, which a random checksum
/// would almost never let it) decodes or fails with an error.
func fuzzWAL(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    var lastEnd = 0
    for entry in WALFrame.scan(bytes) {
        precondition(entry.payloadRange.upperBound <= entry.endOffset && entry.endOffset <= bytes.count && entry.endOffset > lastEnd,
                     "a scanned entry lies inside the segment, after the one before it")
        lastEnd = entry.endOffset
        _ = try? BatchCodec.decode(Array(bytes[entry.payloadRange]), dimensions: 8)
    }
    let payload = Array(bytes)
    _ = BatchCodec.operationCount(payload)
    let framed = WALFrame.encode(lsn: 1, kind: 1, payload: payload)
    let entries = framed.withUnsafeBytes { WALFrame.scan($0) }
    precondition(entries.count == 1 && entries[0].endOffset == framed.count, "a frame the log wrote scans back whole")
    for dimensions in [1, 8, 384] { _ = try? BatchCodec.decode(payload, dimensions: dimensions) }
    return 0
}

@_cdecl("FuzzWAL_main")
func entry(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    FuzzDriver.run(argc, argv) { data, count in
        guard let data else { return fuzzWAL(UnsafeRawPointer(bitPattern: 1)!, 0) }
        return fuzzWAL(UnsafeRawPointer(data), count)
    }
}
