import FuzzDriver
import SextantPayload

/// The binary metadata encoding read back from the record heap: any bytes
/// decode or fail with an error, and what decodes encodes back to bytes that
/// decode to the same metadata (the same bytes again).
func fuzzMetadata(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    guard let metadata = try? MetadataCodec.decode(UnsafeRawBufferPointer(start: start, count: count)) else { return 0 }
    let encoded = MetadataCodec.encode(metadata)
    guard let again = try? encoded.withUnsafeBytes({ try MetadataCodec.decode($0) }) else {
        fatalError("re-encoded metadata does not decode")
    }
    // Compared as bytes: a NaN read from damaged bytes is never equal to itself.
    precondition(MetadataCodec.encode(again) == encoded, "metadata round trip changed the value")
    return 0
}

@_cdecl("FuzzMetadata_main")
func entry(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    FuzzDriver.run(argc, argv) { data, count in
        guard let data else { return fuzzMetadata(UnsafeRawPointer(bitPattern: 1)!, 0) }
        return fuzzMetadata(UnsafeRawPointer(data), count)
    }
}
