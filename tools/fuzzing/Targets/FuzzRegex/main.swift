import FuzzDriver
import SextantPayload

/// where_document's $regex: the first line is the pattern, the rest the
/// document. Any pattern compiles or is refused with a reason; matching is
/// linear in the document and never traps.
func fuzzRegex(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    let split = bytes.firstIndex(of: 10) ?? bytes.count
    let pattern = String(decoding: bytes[0..<split], as: UTF8.self)
    let regex = DocumentRegex(pattern)
    guard regex.error == nil else { return 0 }
    let document = split < bytes.count ? UnsafeRawBufferPointer(rebasing: bytes[(split + 1)...]) : UnsafeRawBufferPointer(start: nil, count: 0)
    _ = regex.matches(document)
    return 0
}

@_cdecl("FuzzRegex_main")
func entry(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    FuzzDriver.run(argc, argv) { data, count in
        guard let data else { return fuzzRegex(UnsafeRawPointer(bitPattern: 1)!, 0) }
        return fuzzRegex(UnsafeRawPointer(data), count)
    }
}
