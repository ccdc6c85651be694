import Crypto
import Foundation

/// AWS Signature Version 4 for S3 (and the S3-interoperable APIs of MinIO, R2
/// and Google Cloud Storage with HMAC keys), as specified in AWS's "Signature
/// Version 4 signing process". Pure functions, so the published examples are
/// tests (Tests/SextantObjectStoreTests).
public struct SigV4Signer: Sendable {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?
    public var region: String
    public var service: String

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil, region: String, service: String = "s3") {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.region = region
        self.service = service
    }

    /// `headers` must hold every header to sign, including `host`; returns the
    /// headers to send (with `x-amz-date`, the security token when there is
    /// one, and `Authorization`).
    public func sign(method: String, path: String, query: [(String, String)], headers: [(String, String)],
                     payloadSHA256Hex: String, date: Date, includeContentHeader: Bool = true) -> [(String, String)] {
        let (amzDate, day) = Self.timestamps(date)
        var all = headers
        all.append(("x-amz-date", amzDate))
        if includeContentHeader { all.append(("x-amz-content-sha256", payloadSHA256Hex)) }
        if let sessionToken { all.append(("x-amz-security-token", sessionToken)) }
        var canonicalHeaders: [(name: String, value: String)] = []
        for (name, value) in all {
            let words = value.trimmingCharacters(in: .whitespaces).split(separator: " ", omittingEmptySubsequences: true)
            canonicalHeaders.append((name.lowercased(), words.joined(separator: " ")))
        }
        canonicalHeaders.sort { $0.name < $1.name }
        let signedHeaders = canonicalHeaders.map(\.name).joined(separator: ";")
        var encodedQuery: [(key: String, value: String)] = query.map { (Self.encode($0.0, slash: true), Self.encode($0.1, slash: true)) }
        encodedQuery.sort { $0.key == $1.key ? $0.value < $1.value : $0.key < $1.key }
        let canonicalQuery = encodedQuery.map { $0.key + "=" + $0.value }.joined(separator: "&")
        let headerBlock = canonicalHeaders.map { $0.name + ":" + $0.value + "\n" }.joined()
        let canonicalRequest = [
            method, Self.encode(path, slash: false), canonicalQuery, headerBlock, signedHeaders, payloadSHA256Hex,
        ].joined(separator: "\n")
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, Self.hex(SHA256.hash(data: Array(canonicalRequest.utf8)))]
            .joined(separator: "\n")
        var key = SymmetricKey(data: Array(("AWS4" + secretAccessKey).utf8))
        for part in [day, region, service, "aws4_request"] {
            key = SymmetricKey(data: Array(HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key)))
        }
        let signature = Self.hex(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: key))
        var result = all
        result.append(("Authorization",
                       "AWS4-HMAC-SHA256 Credential=\(accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"))
        return result
    }

    /// RFC 3986 unreserved characters stay; everything else is %XX (UTF-8).
    /// In paths '/' stays (S3 encodes each segment once).
    public static func encode(_ text: String, slash: Bool) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(Character(UnicodeScalar(byte)))
            case UInt8(ascii: "/") where !slash:
                out.append("/")
            default:
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    static func timestamps(_ date: Date) -> (amzDate: String, day: String) {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let day = String(format: "%04d%02d%02d", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday))
        return (day + String(format: "T%02d%02d%02dZ", Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec)), day)
    }

    public static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        for byte in digest {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static let emptyPayloadSHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
}

/// SHA-256 of a file, streamed in 1 MiB reads.
/// One reused 1 MiB buffer: a file of any size hashes in constant memory
/// (reading through FileHandle allocated a fresh Data per chunk, and a 1 GiB
/// file left the process 800 MiB larger).
public func sha256Hex(ofFile path: String) throws -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw ObjectStoreError(.io, "cannot open \(path): errno \(errno)") }
    defer { close(fd) }
    var hasher = SHA256()
    var buffer = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 {
            if errno == EINTR { continue }
            throw ObjectStoreError(.io, "cannot read \(path): errno \(errno)")
        }
        if count == 0 { break }
        buffer.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[..<count])) }
    }
    return SigV4Signer.hex(hasher.finalize())
}

public func sha256Hex(_ bytes: [UInt8]) -> String { SigV4Signer.hex(SHA256.hash(data: bytes)) }

/// Incremental SHA-256 for callers that do not import Crypto.
public struct SHA256Stream {
    private var hasher = SHA256()
    public init() {}
    public mutating func update(_ bytes: [UInt8]) { hasher.update(data: bytes) }
    public mutating func finish() -> String { SigV4Signer.hex(hasher.finalize()) }
}
