import FuzzDriver
import SextantChroma
import SextantJSON
import SextantPayload

/// ChromaDB's where and where_document grammar as the API reads it: any JSON
/// becomes a filter or a typed error; a filter that validates evaluates on
/// records without trapping.
let metadata = MetadataCodec.encode([
    "year": .int(2024), "price": .double(12.5), "buyer": .string("City of Lyon"), "open": .bool(true),
])
let document = Array("Road repair tender for the city centre, deadline 2025-03-01.".utf8)

func fuzzWhere(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    guard let json = try? JSON.parse(Array(UnsafeRawBufferPointer(start: start, count: count))) else { return 0 }
    let filter = try? ChromaGrammar.where(json)
    let documentFilter = try? ChromaGrammar.whereDocument(json)
    if let filter, (try? FilterValidation.validate(filter, nil)) != nil {
        _ = metadata.withUnsafeBytes { filter.matches($0) }
    }
    if let documentFilter, (try? FilterValidation.validate(nil, documentFilter)) != nil {
        _ = document.withUnsafeBytes { documentFilter.matches($0) }
    }
    return 0
}

@_cdecl("FuzzWhere_main")
func entry(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    FuzzDriver.run(argc, argv) { data, count in
        guard let data else { return fuzzWhere(UnsafeRawPointer(bitPattern: 1)!, 0) }
        return fuzzWhere(UnsafeRawPointer(data), count)
    }
}
