import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// An `.fvecs` file read a block of rows at a time (pread into the caller's
/// buffer), never loaded whole: a million 384-d vectors are 1.5 GB, which a
/// scale benchmark must not hold in memory beside the index it measures.
public final class FvecsReader: @unchecked Sendable {
    public let path: String
    public let rows: Int
    public let dimensions: Int
    private let fd: Int32
    private var rowBytes: Int { 4 + 4 * dimensions }

    public init(path: String) throws(DatasetError) {
        self.path = path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .unreadable(path, String(cString: strerror(errno))) }
        var header: Int32 = 0
        guard pread(fd, &header, 4, 0) == 4, header > 0, header <= 65_536 else {
            close(fd)
            throw .malformed(path, "does not start with a positive dimension")
        }
        dimensions = Int(header)
        var info = stat()
        fstat(fd, &info)
        let size = Int(info.st_size)
        guard size % (4 + 4 * Int(header)) == 0 else {
            close(fd)
            throw .malformed(path, "\(size) bytes is not a whole number of \(header)-d rows")
        }
        rows = size / (4 + 4 * Int(header))
    }

    deinit { close(fd) }

    /// Reads rows [start, start + count) into `destination` (count × dimensions floats).
    public func read(_ start: Int, count: Int, into destination: UnsafeMutablePointer<Float>) throws(DatasetError) {
        precondition(start >= 0 && start + count <= rows, "rows \(start)..<\(start + count) outside the file")
        let bytes = count * rowBytes
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 1), alignment: 16)
        defer { raw.deallocate() }
        var done = 0
        while done < bytes {
            let got = pread(fd, raw + done, bytes - done, off_t(start * rowBytes + done))
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else { throw .unreadable(path, "short read at row \(start)") }
            done += got
        }
        for row in 0..<count {
            let source = raw + row * rowBytes
            guard source.loadUnaligned(as: Int32.self) == Int32(dimensions) else {
                throw .malformed(path, "row \(start + row) does not have \(dimensions) dimensions")
            }
            (destination + row * dimensions).update(
                from: (source + 4).assumingMemoryBound(to: Float.self), count: dimensions)
        }
    }

    /// One row, as an array (for occasional lookups: recall thresholds).
    public func row(_ index: Int) throws(DatasetError) -> [Float] {
        var out = [Float](repeating: 0, count: dimensions)
        try out.withUnsafeMutableBufferPointer { (buffer) throws(DatasetError) in
            guard let base = buffer.baseAddress else { return }
            try read(index, count: 1, into: base)
        }
        return out
    }
}
