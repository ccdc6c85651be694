import FuzzDriver
import NIOCore
import SextantPayload
import SextantProtocol

/// The write path's hand-written record decoder against SwiftProtobuf's own,
/// on the same bytes: where both accept a write request, they must read the
/// same ids and documents (differential fuzzing), and neither may trap.
func fuzzWire(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    var buffer = ByteBufferAllocator().buffer(capacity: count)
    buffer.writeBytes(UnsafeRawBufferPointer(start: start, count: count))
    guard let split = try? WriteRequestDecoding.split(buffer) else { return 0 }
    let byHand = try? split.wireRecords()
    let byLibrary = try? split.records()
    if let byHand, let byLibrary {
        precondition(byHand.count == byLibrary.count, "both decoders see the same records")
        for (mine, theirs) in zip(byHand, byLibrary) {
            precondition(mine.id == theirs.id, "ids agree: \(mine.id.debugDescription) vs \(theirs.id.debugDescription)")
            precondition(mine.document == (theirs.hasDocument ? theirs.document : nil), "documents agree for \(mine.id.debugDescription)")
        }
    }
    return 0
}

@_cdecl("FuzzWire_main")
func entry(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    FuzzDriver.run(argc, argv) { data, count in
        guard let data else { return fuzzWire(UnsafeRawPointer(bitPattern: 1)!, 0) }
        return fuzzWire(UnsafeRawPointer(data), count)
    }
}
