import FuzzDriver
import SextantKernels
import SextantStorage

/// A collection's MANIFEST as an open reads it: damaged bytes fail with
/// `corrupted`, never a trap; and a body whose checksum holds (so the fuzzer
/// reaches the JSON decoding and the version check) decodes or fails the same way.
func fuzzManifest(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    _ = try? Manifest.decode(bytes, path: "MANIFEST")
    var framed = Array("SXM1".utf8)
    withUnsafeBytes(of: CRC32C.checksum(bytes).littleEndian) { framed.append(contentsOf: $0) }
    framed.append(contentsOf: bytes)
    if let manifest = try? Manifest.decode(framed, path: "MANIFEST") {
        // What decodes encodes again.
        _ = try? manifest.encoded()
    }
    return 0
}

@_cdecl("FuzzManifest_main")
func entry(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    FuzzDriver.run(argc, argv) { data, count in
        guard let data else { return fuzzManifest(UnsafeRawPointer(bitPattern: 1)!, 0) }
        return fuzzManifest(UnsafeRawPointer(data), count)
    }
}
