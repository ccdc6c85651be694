import FuzzDriver
import SextantJSON

/// The JSON parser every HTTP body goes through: any bytes parse or fail with
/// an error, and what parses serializes to text that parses back to the same value.
func fuzzJSON(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Array(UnsafeRawBufferPointer(start: start, count: count))
    guard let value = try? JSON.parse(bytes) else { return 0 }
    let text = JSON.serialize(value)
    guard let again = try? JSON.parse(text) else { fatalError("serialized JSON does not parse: \(text.prefix(200))") }
    precondition(again == value, "JSON round trip changed the value: \(text.prefix(200))")
    return 0
}

@_cdecl("FuzzJSON_main")
func entry(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    FuzzDriver.run(argc, argv) { data, count in
        guard let data else { return fuzzJSON(UnsafeRawPointer(bitPattern: 1)!, 0) }
        return fuzzJSON(UnsafeRawPointer(data), count)
    }
}
