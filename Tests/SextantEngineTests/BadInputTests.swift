import Foundation
import NIOCore
import SextantClient
import SextantProtocol
import SextantTestSupport
import SwiftProtobuf
import Testing

#if canImport(Glibc)
import Glibc
import SextantPayload
#endif

/// Frame bytes as a client would send them.
func frameBytes(_ method: Method, id: UInt64, body: [UInt8], lengthOverride: UInt32? = nil) -> [UInt8] {
    var buffer = ByteBuffer()
    FrameEncoder.write(
        Frame(header: FrameHeader(kind: .request, method: method, requestID: id), body: ByteBuffer(bytes: body)), into: &buffer)
    if let lengthOverride { buffer.setInteger(lengthOverride, at: 0) }
    return Array(buffer.readableBytesView)
}

func preamble() -> [UInt8] { withUnsafeBytes(of: ProtocolLimits.preamble.bigEndian) { Array($0) } }

func helloBytes(id: UInt64 = 1, token: String = "") -> [UInt8] {
    var hello = Sextant_V1_Hello()
    hello.protocolVersion = ProtocolLimits.version
    hello.token = token
    let body: [UInt8] = (try? hello.serializedBytes()) ?? []
    return frameBytes(.hello, id: id, body: body)
}

/// Reads one response frame from a raw socket: (status, method, id, body).
func readResponse(_ socket: RawSocket) -> (StatusCode, UInt16, UInt64, [UInt8])? {
    guard let header = socket.receive(20), header.count == 20 else { return nil }
    let length = Int(UInt32(header[0]) << 24 | UInt32(header[1]) << 16 | UInt32(header[2]) << 8 | UInt32(header[3]))
    let body = length > 16 ? (socket.receive(length - 16) ?? []) : []
    let method = UInt16(header[6]) << 8 | UInt16(header[7])
    var id: UInt64 = 0
    for byte in header[8..<16] { id = id << 8 | UInt64(byte) }
    return (StatusCode(rawValue: header[5]) ?? .unknown, method, id, body)
}

func errorMessage(_ body: [UInt8]) -> String {
    (try? Sextant_V1_ErrorDetail(serializedBytes: body))?.message ?? ""
}

@Suite struct EngineBadInputTests {
    @Test func garbageClosesOnlyThatConnection() async throws {
        try await withEngine { engine, client in
            let garbage = try RawSocket(port: engine.port)
            garbage.send(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
            #expect(garbage.isClosedByPeer(), "a non-Sextant stream is closed")
            let badKind = try RawSocket(port: engine.port)
            badKind.send(preamble() + helloBytes())
            #expect(readResponse(badKind)?.0 == .ok)
            var frame = frameBytes(.heartbeat, id: 2, body: [])
            frame[4] = 9  // unknown frame kind
            badKind.send(frame)
            #expect(badKind.isClosedByPeer(), "an impossible header is framing garbage")
            #expect(try await client.heartbeat() > 0, "everyone else is still served")
        }
    }

    @Test func statusesForWellFramedBadRequests() async throws {
        try await withEngine { engine, client in
            _ = try await client.createCollection(name: "c", dimension: 4, metric: .l2)
            let socket = try RawSocket(port: engine.port)
            socket.send(preamble())
            // A request before Hello.
            socket.send(frameBytes(.heartbeat, id: 7, body: []))
            let early = readResponse(socket)
            #expect(early?.0 == .unauthenticated && early?.2 == 7)
            #expect(socket.isClosedByPeer())

            let ready = try RawSocket(port: engine.port)
            ready.send(preamble() + helloBytes())
            #expect(readResponse(ready)?.0 == .ok)
            ready.send(frameBytes(Method(rawValue: 999), id: 10, body: []))
            let unknown = readResponse(ready)
            #expect(unknown?.0 == .unimplemented && unknown?.1 == 999 && unknown?.2 == 10)
            ready.send(frameBytes(.query, id: 11, body: [0xFF, 0xFF, 0xFF]))
            #expect(readResponse(ready)?.0 == .invalidArgument, "undecodable body")
            var query = Sextant_V1_QueryRequest()
            query.collection.name = "c"
            query.k = 1
            query.queries = Sextant_V1_Vectors(rows: [[1, 2, 3]], dimension: 3)
            ready.send(frameBytes(.query, id: 12, body: try query.serializedBytes()))
            let wrongDimension = readResponse(ready)
            #expect(wrongDimension?.0 == .invalidArgument)
            let message = errorMessage(wrongDimension?.3 ?? [])
            #expect(message.contains("3 dimensions"), "\(message)")
            query.queries.data = Data([1, 2, 3])  // bytes that do not match the shape
            query.queries.dimension = 4
            ready.send(frameBytes(.query, id: 13, body: try query.serializedBytes()))
            #expect(readResponse(ready)?.0 == .invalidArgument)
            ready.send(frameBytes(.hello, id: 14, body: []))
            #expect(readResponse(ready)?.0 == .failedPrecondition, "a second Hello")
            ready.send(frameBytes(.heartbeat, id: 15, body: []))
            #expect(readResponse(ready)?.0 == .ok, "and the connection still works")

            // A frame over the limit: RESOURCE_EXHAUSTED naming the limit, then the connection closes.
            let big = try RawSocket(port: engine.port)
            big.send(preamble() + helloBytes())
            _ = readResponse(big)
            big.send(frameBytes(.upsert, id: 20, body: [], lengthOverride: UInt32(200 << 20)))
            let oversized = readResponse(big)
            #expect(oversized?.0 == .resourceExhausted && oversized?.2 == 20)
            #expect(big.isClosedByPeer())

            // A client that vanishes mid-frame.
            let partial = try RawSocket(port: engine.port)
            partial.send(preamble() + helloBytes())
            _ = readResponse(partial)
            partial.send(Array(frameBytes(.heartbeat, id: 30, body: Array(repeating: 1, count: 100)).prefix(40)))
            _ = partial  // closed by deinit below
            #expect(try await client.heartbeat() > 0)
        }
    }

    @Test func tenThousandIdleConnectionsDoNotStopService() async throws {
        raiseOpenFileLimit()
        try await withEngine { engine, client in
            let handle = try await client.createCollection(name: "idle", dimension: 4, metric: .l2)
            try await handle.add(ids: ["a", "b"], vectors: [[1, 0, 0, 0], [0, 1, 0, 0]])
            var idle: [RawSocket] = []
            idle.reserveCapacity(10_000)
            let hello = preamble() + helloBytes()
            for index in 0..<10_000 {
                let socket = try RawSocket(port: engine.port)
                if index % 2 == 0 { socket.send(hello) }  // half authenticated, half silent
                idle.append(socket)
            }
            let started = Date()
            for _ in 0..<50 {
                #expect(try await handle.query(vectors: [[1, 0, 0, 0]], k: 1)[0].first?.id == "a")
            }
            #expect(Date().timeIntervalSince(started) < 30)
            idle.removeAll()
            #expect(try await client.heartbeat() > 0)
        }
    }

    @Test func seededRandomBytesNeverHurtTheEngine() async throws {
        let iterations = Int(ProcessInfo.processInfo.environment["SEXTANT_FUZZ_ITERATIONS"] ?? "") ?? 300
        try await withEngine { engine, client in
            let handle = try await client.createCollection(name: "fuzz", dimension: 4, metric: .l2)
            try await handle.add(ids: ["x"], vectors: [[1, 2, 3, 4]])
            var generator = SeededGenerator(seed: 99)
            let methods: [Method] = [.heartbeat, .serverInfo, .createCollection, .getCollection, .count, .add, .upsert, .update,
                                     .delete, .get, .query, .stats, Method(rawValue: 77)]
            for iteration in 0..<iterations {
                let socket = try RawSocket(port: engine.port)
                var bytes: [UInt8] = []
                switch iteration % 4 {
                case 0:  // pure noise
                    bytes = (0..<Int.random(in: 1...2_000, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
                case 1:  // a valid preamble, then noise
                    bytes = preamble() + (0..<Int.random(in: 1...500, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
                default:  // well-framed requests with random bodies for real methods
                    bytes = preamble() + helloBytes()
                    for id in 0..<UInt64.random(in: 1...8, using: &generator) {
                        let body = (0..<Int.random(in: 0...300, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
                        bytes += frameBytes(methods[Int.random(in: 0..<methods.count, using: &generator)], id: id + 2, body: body)
                    }
                }
                socket.send(bytes)
                if iteration % 50 == 0 { #expect(try await client.heartbeat() > 0) }
            }
            // The engine is alive, serving, and its data intact.
            #expect(try await handle.get(ids: ["x"], include: [.vectors]).first?.vector == [1, 2, 3, 4])
            #expect(try await client.getCollection(name: "fuzz").count() >= 1)
        }
    }
}

/// Clients that hold the engine's resources without using them: one that
/// trickles a frame or never finishes its handshake, and one that never reads
/// its responses. Each is closed on its deadline; everyone else is served.
@Suite struct HostileClientTests {
    @Test func slowClientsAreClosedAndIdleOnesKept() async throws {
        try await withEngine(arguments: ["--read-timeout-ms", "500"]) { engine, client in
            let silent = try RawSocket(port: engine.port)  // connects, never says anything
            let halfHandshake = try RawSocket(port: engine.port)
            halfHandshake.send(preamble() + Array(helloBytes().prefix(7)))
            let halfFrame = try RawSocket(port: engine.port)
            halfFrame.send(preamble() + helloBytes())
            #expect(readResponse(halfFrame)?.0 == .ok)
            halfFrame.send(Array(frameBytes(.heartbeat, id: 2, body: []).prefix(10)))
            let idle = try RawSocket(port: engine.port)
            idle.send(preamble() + helloBytes())
            #expect(readResponse(idle)?.0 == .ok)
            let started = Date()
            #expect(silent.isClosedByPeer())
            #expect(halfHandshake.isClosedByPeer())
            #expect(halfFrame.isClosedByPeer())
            #expect(Date().timeIntervalSince(started) < 4.5, "closed on the 500 ms deadline, not the socket's 5 s timeout")
            // A client idle between whole frames is not slow: it is still served.
            idle.send(frameBytes(.heartbeat, id: 3, body: []))
            #expect(readResponse(idle)?.0 == .ok)
            #expect(try await client.heartbeat() > 0)
        }
    }

    @Test func aClientThatNeverReadsIsClosedAndOthersAreServed() async throws {
        try await withEngine(arguments: ["--stalled-write-timeout-ms", "1000"]) { engine, client in
            let handle = try await client.createCollection(name: "wide", dimension: 384, metric: .l2)
            let vectors = randomVectors(count: 2_000, dimensions: 384, seed: 5)
            let document = String(repeating: "a long document that fills the response ", count: 25)
            for start in stride(from: 0, to: 2_000, by: 500) {
                _ = try await handle.add(ids: (start..<start + 500).map { "r\($0)" }, vectors: Array(vectors[start..<start + 500]),
                                         documents: Array(repeating: document, count: 500))
            }
            var request = Sextant_V1_GetRequest()
            request.collection.name = "wide"
            request.limit = 2_000
            request.include.documents = true
            request.include.vectors = true
            let body: [UInt8] = try request.serializedBytes()
            let stalled = try RawSocket(port: engine.port)
            stalled.send(preamble() + helloBytes())
            #expect(readResponse(stalled)?.0 == .ok)
            // Sixteen answers of about 4 MB each, none of them read.
            var requests: [UInt8] = []
            for id in 10..<26 { requests += frameBytes(.get, id: UInt64(id), body: body) }
            stalled.send(requests)
            let started = Date()
            while Date().timeIntervalSince(started) < 2 {
                #expect(try await handle.count() == 2_000, "the engine serves others meanwhile")
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(stalled.isClosedByPeer(), "closed once it stalled for its timeout")
            #expect(try await client.heartbeat() > 0)
        }
    }
}
