import Foundation

/// Vectors computed elsewhere, in an fvecs file whose rows line up with CSV
/// rows (the debian-minilm batches: row r of batch k is row first_row[k] + r).
/// Read with pread, so the file is never loaded whole.
public final class PrecomputedVectors: Sendable {
    public let path: String
    public let dimension: Int
    public let rows: Int
    private let fd: Int32

    public init(path: String, dimension: Int) throws {
        self.path = path
        self.dimension = dimension
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw IngestError.source("cannot open vectors \(path): \(String(cString: strerror(errno)))") }
        var info = stat()
        let size = fstat(fd, &info) == 0 ? Int(info.st_size) : 0
        let rowBytes = 4 + 4 * dimension
        var header: Int32 = 0
        guard size % rowBytes == 0, size > 0, pread(fd, &header, 4, 0) == 4, Int(header) == dimension else {
            close(fd)
            throw IngestError.source("\(path) is not an fvecs file of dimension \(dimension)")
        }
        rows = size / rowBytes
    }

    deinit { close(fd) }

    /// Rows `first ..< first + count`; throws if the file is shorter.
    public func vectors(first: Int, count: Int) throws -> [[Float]] {
        guard first >= 0, first + count <= rows else {
            throw IngestError.source("\(path) has \(rows) rows; rows \(first)..<\(first + count) were asked for")
        }
        let rowBytes = 4 + 4 * dimension
        var buffer = [UInt8](repeating: 0, count: rowBytes * count)
        let wanted = buffer.count
        let got = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, wanted, off_t(first * rowBytes)) }
        guard got == wanted else { throw IngestError.source("short read from \(path)") }
        return buffer.withUnsafeBytes { raw in
            (0..<count).map { row in
                (0..<dimension).map { column in
                    Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: row * rowBytes + 4 + 4 * column, as: UInt32.self)))
                }
            }
        }
    }
}
