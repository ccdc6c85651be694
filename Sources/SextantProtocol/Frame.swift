import NIOCore
import SextantPayload

/// Status codes, numbered as gRPC's.
public enum StatusCode: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case ok = 0
    case cancelled = 1
    case unknown = 2
    case invalidArgument = 3
    case deadlineExceeded = 4
    case notFound = 5
    case alreadyExists = 6
    case permissionDenied = 7
    case resourceExhausted = 8
    case failedPrecondition = 9
    case aborted = 10
    case outOfRange = 11
    case unimplemented = 12
    case `internal` = 13
    case unavailable = 14
    case dataLoss = 15
    case unauthenticated = 16

    public var description: String {
        switch self {
        case .ok: return "OK"
        case .cancelled: return "CANCELLED"
        case .unknown: return "UNKNOWN"
        case .invalidArgument: return "INVALID_ARGUMENT"
        case .deadlineExceeded: return "DEADLINE_EXCEEDED"
        case .notFound: return "NOT_FOUND"
        case .alreadyExists: return "ALREADY_EXISTS"
        case .permissionDenied: return "PERMISSION_DENIED"
        case .resourceExhausted: return "RESOURCE_EXHAUSTED"
        case .failedPrecondition: return "FAILED_PRECONDITION"
        case .aborted: return "ABORTED"
        case .outOfRange: return "OUT_OF_RANGE"
        case .unimplemented: return "UNIMPLEMENTED"
        case .internal: return "INTERNAL"
        case .unavailable: return "UNAVAILABLE"
        case .dataLoss: return "DATA_LOSS"
        case .unauthenticated: return "UNAUTHENTICATED"
        }
    }
}

/// Method numbers. Unknown numbers are representable so the server can answer
/// UNIMPLEMENTED instead of dropping the connection; `known` maps a number to
/// the closed set a server dispatches over exhaustively.
public struct Method: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(_ known: KnownMethod) { rawValue = known.rawValue }

    public static let hello = Method(.hello)
    public static let heartbeat = Method(.heartbeat)
    public static let serverInfo = Method(.serverInfo)
    public static let createCollection = Method(.createCollection)
    public static let getCollection = Method(.getCollection)
    public static let listCollections = Method(.listCollections)
    public static let deleteCollection = Method(.deleteCollection)
    public static let modifyCollection = Method(.modifyCollection)
    public static let count = Method(.count)
    public static let add = Method(.add)
    public static let upsert = Method(.upsert)
    public static let update = Method(.update)
    public static let delete = Method(.delete)
    public static let get = Method(.get)
    public static let query = Method(.query)
    public static let facets = Method(.facets)
    public static let stats = Method(.stats)
    public static let checkpoint = Method(.checkpoint)
    public static let snapshot = Method(.snapshot)

    /// The method this number names, or nil for a number this build does not know.
    public var known: KnownMethod? { KnownMethod(rawValue: rawValue) }
    public var description: String { known?.name ?? "Method(\(rawValue))" }
    public var isKnown: Bool { known != nil }
}

/// Every method this protocol version defines (proto/PROTOCOL.md lists them).
/// A server switches over this enum with no default branch, so a method added
/// here fails to compile until it is handled.
public enum KnownMethod: UInt16, Sendable, CaseIterable {
    case hello = 1
    case heartbeat = 2
    case serverInfo = 3
    case createCollection = 10
    case getCollection = 11
    case listCollections = 12
    case deleteCollection = 13
    case modifyCollection = 14
    case count = 20
    case add = 21
    case upsert = 22
    case update = 23
    case delete = 24
    case get = 25
    case query = 26
    case facets = 27
    case stats = 30
    case checkpoint = 31
    case snapshot = 32

    /// The name PROTOCOL.md and the logs use.
    public var name: String {
        switch self {
        case .hello: return "Hello"
        case .heartbeat: return "Heartbeat"
        case .serverInfo: return "ServerInfo"
        case .createCollection: return "CreateCollection"
        case .getCollection: return "GetCollection"
        case .listCollections: return "ListCollections"
        case .deleteCollection: return "DeleteCollection"
        case .modifyCollection: return "ModifyCollection"
        case .count: return "Count"
        case .add: return "Add"
        case .upsert: return "Upsert"
        case .update: return "Update"
        case .delete: return "Delete"
        case .get: return "Get"
        case .query: return "Query"
        case .facets: return "Facets"
        case .stats: return "Stats"
        case .checkpoint: return "Checkpoint"
        case .snapshot: return "Snapshot"
        }
    }
}

/// Protocol constants and bounds (see proto/PROTOCOL.md).
public enum ProtocolLimits {
    /// The 4 bytes a client sends first: "SXT" and the protocol's major version.
    public static let preamble: UInt32 = 0x5358_5401
    public static let version: UInt32 = 1
    /// Bytes after the length field: kind, status, method, request id, deadline.
    public static let headerBytesAfterLength = 16
    public static let headerBytes = 20
    /// Largest frame (length field value) either side accepts by default.
    public static let defaultMaximumFrameBytes = 64 << 20
    /// Requests a connection may have in flight; more are refused with RESOURCE_EXHAUSTED.
    public static let defaultMaximumInFlight = 256
    /// Records per write batch and ids per get: the one batch bound every layer
    /// derives from (the engine's storage, the client, the ingestion worker).
    public static let maximumBatchRecords = BatchLimits.maximumRecords
    /// Query vectors per query request.
    public static let maximumQueries = 1_024
    /// A connection must complete Hello within this time.
    public static let handshakeTimeoutMilliseconds: Int64 = 10_000
}

public enum FrameKind: UInt8, Sendable {
    case request = 1
    case response = 2
}

/// The fixed part of every frame (all integers big-endian):
///
///     0  u32 length      bytes after this field (16 + body)
///     4  u8  kind        1 request, 2 response
///     5  u8  status      response status (0 in requests)
///     6  u16 method
///     8  u64 request id  chosen by the client, echoed in the response
///     16 u32 deadline    requests: milliseconds the client will wait (0 = none); responses: 0
///     20 ... body        a protobuf message (ErrorDetail when status != 0)
public struct FrameHeader: Sendable, Equatable {
    public var kind: FrameKind
    public var status: StatusCode
    public var method: Method
    public var requestID: UInt64
    public var deadlineMilliseconds: UInt32

    public init(kind: FrameKind, status: StatusCode = .ok, method: Method, requestID: UInt64, deadlineMilliseconds: UInt32 = 0) {
        self.kind = kind
        self.status = status
        self.method = method
        self.requestID = requestID
        self.deadlineMilliseconds = deadlineMilliseconds
    }
}

public struct Frame: Sendable {
    public var header: FrameHeader
    public var body: ByteBuffer

    public init(header: FrameHeader, body: ByteBuffer) {
        self.header = header
        self.body = body
    }
}

public enum FrameError: Error, Equatable, CustomStringConvertible {
    case badPreamble(UInt32)
    case malformedHeader(String)
    case frameTooLarge(lengthBytes: Int, maximumBytes: Int)

    public var description: String {
        switch self {
        case .badPreamble(let value):
            return "not a Sextant connection (preamble 0x\(String(value, radix: 16)), expected 0x\(String(ProtocolLimits.preamble, radix: 16)))"
        case .malformedHeader(let reason): return "malformed frame header: \(reason)"
        case .frameTooLarge(let length, let maximum): return "frame of \(length) bytes exceeds the \(maximum)-byte limit"
        }
    }
}

/// What the decoder produces.
public enum FrameEvent: Sendable {
    /// The 4-byte preamble arrived and matched (server side only).
    case preamble
    case frame(Frame)
    /// A frame declared more bytes than allowed; its header is known, its body is
    /// not read. The server answers RESOURCE_EXHAUSTED and closes the connection.
    case oversized(FrameHeader, lengthBytes: Int)
}

/// Splits the byte stream into frames. Garbage (a bad preamble, an impossible
/// header) throws, and the pipeline closes the connection: after garbage the
/// stream cannot be re-synchronised.
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = FrameEvent

    private var awaitingPreamble: Bool
    private var discarding = false
    public let maximumFrameBytes: Int

    public init(expectPreamble: Bool, maximumFrameBytes: Int = ProtocolLimits.defaultMaximumFrameBytes) {
        awaitingPreamble = expectPreamble
        self.maximumFrameBytes = maximumFrameBytes
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        if discarding {
            buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
            return .needMoreData
        }
        if awaitingPreamble {
            guard let magic = buffer.readInteger(as: UInt32.self) else { return .needMoreData }
            guard magic == ProtocolLimits.preamble else { throw FrameError.badPreamble(magic) }
            awaitingPreamble = false
            context.fireChannelRead(wrapInboundOut(.preamble))
            return .continue
        }
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        guard length >= UInt32(ProtocolLimits.headerBytesAfterLength) else {
            throw FrameError.malformedHeader("length \(length) is shorter than the header")
        }
        guard buffer.readableBytes >= ProtocolLimits.headerBytes else { return .needMoreData }
        let header = try Self.parseHeader(buffer, at: buffer.readerIndex + 4)
        if Int(length) > maximumFrameBytes {
            discarding = true
            buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
            context.fireChannelRead(wrapInboundOut(.oversized(header, lengthBytes: Int(length))))
            return .needMoreData
        }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: ProtocolLimits.headerBytes)
        guard let body = buffer.readSlice(length: Int(length) - ProtocolLimits.headerBytesAfterLength) else {
            return .needMoreData
        }
        context.fireChannelRead(wrapInboundOut(.frame(Frame(header: header, body: body))))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws
        -> DecodingState
    {
        // A peer that disconnects mid-frame leaves a partial frame: drop it quietly.
        while try decode(context: context, buffer: &buffer) == .continue {}
        buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
        return .needMoreData
    }

    static func parseHeader(_ buffer: ByteBuffer, at offset: Int) throws -> FrameHeader {
        guard let kindByte = buffer.getInteger(at: offset, as: UInt8.self),
            let statusByte = buffer.getInteger(at: offset + 1, as: UInt8.self),
            let method = buffer.getInteger(at: offset + 2, as: UInt16.self),
            let requestID = buffer.getInteger(at: offset + 4, as: UInt64.self),
            let deadline = buffer.getInteger(at: offset + 12, as: UInt32.self)
        else { throw FrameError.malformedHeader("short header") }
        guard let kind = FrameKind(rawValue: kindByte) else { throw FrameError.malformedHeader("unknown kind \(kindByte)") }
        guard let status = StatusCode(rawValue: statusByte) else {
            throw FrameError.malformedHeader("unknown status \(statusByte)")
        }
        return FrameHeader(kind: kind, status: status, method: Method(rawValue: method), requestID: requestID,
                           deadlineMilliseconds: deadline)
    }
}

/// Writes frames (header, then body) into the outbound byte stream.
public struct FrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = Frame

    public init() {}

    public func encode(data frame: Frame, out: inout ByteBuffer) throws {
        Self.write(frame, into: &out)
    }

    public static func write(_ frame: Frame, into out: inout ByteBuffer) {
        out.reserveCapacity(minimumWritableBytes: ProtocolLimits.headerBytes + frame.body.readableBytes)
        out.writeInteger(UInt32(ProtocolLimits.headerBytesAfterLength + frame.body.readableBytes))
        out.writeInteger(frame.header.kind.rawValue)
        out.writeInteger(frame.header.status.rawValue)
        out.writeInteger(frame.header.method.rawValue)
        out.writeInteger(frame.header.requestID)
        out.writeInteger(frame.header.deadlineMilliseconds)
        var body = frame.body
        out.writeBuffer(&body)
    }
}
