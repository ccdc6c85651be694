import FuzzDriver
import NIOCore
import NIOEmbedded
import SextantProtocol

/// The engine's first contact with a connection: the frame decoder over any
/// byte stream (split where the input says, as TCP may split it), then each
/// frame's body decoded as the message its method names. Garbage closes the
/// connection with an error; nothing traps.
func fuzzFrames(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    guard let first = bytes.first else { return 0 }
    let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(expectPreamble: first & 1 == 0, maximumFrameBytes: 8_192)))
    let rest = bytes.dropFirst()
    let cut = rest.isEmpty ? 0 : Int(first) % (rest.count + 1)
    for part in [rest.prefix(cut), rest.dropFirst(cut)] where !part.isEmpty {
        var buffer = channel.allocator.buffer(capacity: part.count)
        buffer.writeBytes(part)
        do { try channel.writeInbound(buffer) } catch { break }
    }
    while let event = try? channel.readInbound(as: FrameEvent.self) {
        guard case .frame(let frame) = event else { continue }
        switch frame.header.method {
        case .hello: _ = try? MessageCodec.decode(Sextant_V1_Hello.self, from: frame.body)
        case .query: _ = try? MessageCodec.decode(Sextant_V1_QueryRequest.self, from: frame.body)
        case .get: _ = try? MessageCodec.decode(Sextant_V1_GetRequest.self, from: frame.body)
        case .delete: _ = try? MessageCodec.decode(Sextant_V1_DeleteRequest.self, from: frame.body)
        case .createCollection: _ = try? MessageCodec.decode(Sextant_V1_CreateCollectionRequest.self, from: frame.body)
        default:
            if let split = try? WriteRequestDecoding.split(frame.body) { _ = try? split.wireRecords() }
        }
    }
    _ = try? channel.finish()
    return 0
}

@_cdecl("FuzzFrames_main")
func entry(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    FuzzDriver.run(argc, argv) { data, count in
        guard let data else { return fuzzFrames(UnsafeRawPointer(bitPattern: 1)!, 0) }
        return fuzzFrames(UnsafeRawPointer(data), count)
    }
}
