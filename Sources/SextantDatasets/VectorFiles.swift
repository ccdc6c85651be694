import Foundation

public enum DatasetError: Error, CustomStringConvertible, Equatable {
    case missingFile(String)
    case unreadable(String, String)
    case malformed(String, String)
    case dimensionMismatch(String, expected: Int, actual: Int)

    public var description: String {
        switch self {
        case .missingFile(let path): return "\(path): no such file"
        case .unreadable(let path, let reason): return "\(path): cannot read: \(reason)"
        case .malformed(let path, let reason): return "\(path): \(reason)"
        case .dimensionMismatch(let path, let expected, let actual):
            return "\(path): vectors have \(actual) dimensions, expected \(expected)"
        }
    }
}

/// A whole .fvecs or .ivecs file in memory, as one flat row-major array.
/// Format (little-endian): per row an int32 dimension d, then d 4-byte values.
/// Every row must have the same d; a file whose size is not a whole number of
/// rows is reported as truncated rather than read short.
public struct VectorFile<Element: BinaryInteger & Sendable>: Sendable {
    public let path: String
    public let rows: Int
    public let dimensions: Int
    public let values: [Element]

    public func row(_ index: Int) -> ArraySlice<Element> {
        values[(index * dimensions)..<((index + 1) * dimensions)]
    }
}

public struct FloatVectorFile: Sendable {
    public let path: String
    public let rows: Int
    public let dimensions: Int
    public let values: [Float]

    public init(path: String, rows: Int, dimensions: Int, values: [Float]) {
        self.path = path
        self.rows = rows
        self.dimensions = dimensions
        self.values = values
    }

    public func row(_ index: Int) -> ArraySlice<Float> {
        values[(index * dimensions)..<((index + 1) * dimensions)]
    }

    public func withRow<T>(_ index: Int, _ body: (UnsafeBufferPointer<Float>) throws -> T) rethrows -> T {
        try values.withUnsafeBufferPointer { all in
            try body(UnsafeBufferPointer(rebasing: all[(index * dimensions)..<((index + 1) * dimensions)]))
        }
    }
}

public enum VectorFiles {
    /// Largest file accepted (a guard against reading a wrong path into memory).
    public static let maximumFileBytes = 16 << 30

    static func readAll(_ path: String) throws(DatasetError) -> [UInt8] {
        guard FileManager.default.fileExists(atPath: path) else { throw .missingFile(path) }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw .unreadable(path, "\(error.localizedDescription)")
        }
        guard data.count <= maximumFileBytes else { throw .malformed(path, "file is larger than \(maximumFileBytes) bytes") }
        return [UInt8](data)
    }

    /// Parses the row structure; returns (rows, dimensions) after checking every row header.
    static func shape(_ bytes: [UInt8], path: String, expectedDimensions: Int?) throws(DatasetError) -> (Int, Int) {
        guard bytes.count >= 4 else { throw .malformed(path, "file is empty or shorter than one row header") }
        let dimensions = Int(readInt32(bytes, at: 0))
        guard dimensions > 0, dimensions <= 1 << 20 else { throw .malformed(path, "implausible dimension \(dimensions)") }
        if let expectedDimensions, expectedDimensions != dimensions {
            throw .dimensionMismatch(path, expected: expectedDimensions, actual: dimensions)
        }
        let rowBytes = 4 + 4 * dimensions
        guard bytes.count % rowBytes == 0 else {
            throw .malformed(
                path, "truncated: \(bytes.count) bytes is not a whole number of \(rowBytes)-byte rows "
                    + "(\(bytes.count / rowBytes) full rows, \(bytes.count % rowBytes) bytes left over)")
        }
        let rows = bytes.count / rowBytes
        for row in 0..<rows {
            let d = Int(readInt32(bytes, at: row * rowBytes))
            guard d == dimensions else { throw .malformed(path, "row \(row) has dimension \(d), row 0 has \(dimensions)") }
        }
        return (rows, dimensions)
    }

    static func readInt32(_ bytes: [UInt8], at offset: Int) -> Int32 {
        Int32(bitPattern: UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16
            | UInt32(bytes[offset + 3]) << 24)
    }

    public static func readFvecs(_ path: String, expectedDimensions: Int? = nil) throws(DatasetError) -> FloatVectorFile {
        let bytes = try readAll(path)
        let (rows, dimensions) = try shape(bytes, path: path, expectedDimensions: expectedDimensions)
        var values = [Float](repeating: 0, count: rows * dimensions)
        let rowBytes = 4 + 4 * dimensions
        bytes.withUnsafeBytes { raw in
            values.withUnsafeMutableBytes { out in
                for row in 0..<rows {
                    let source = UnsafeRawBufferPointer(rebasing: raw[(row * rowBytes + 4)..<((row + 1) * rowBytes)])
                    UnsafeMutableRawBufferPointer(rebasing: out[(row * dimensions * 4)..<((row + 1) * dimensions * 4)])
                        .copyMemory(from: source)
                }
            }
        }
        for (index, value) in values.enumerated() where !value.isFinite {
            throw .malformed(path, "row \(index / dimensions) holds a non-finite value")
        }
        return FloatVectorFile(path: path, rows: rows, dimensions: dimensions, values: values)
    }

    public static func readIvecs(_ path: String) throws(DatasetError) -> VectorFile<Int32> {
        let bytes = try readAll(path)
        let (rows, dimensions) = try shape(bytes, path: path, expectedDimensions: nil)
        let rowBytes = 4 + 4 * dimensions
        var values = [Int32](repeating: 0, count: rows * dimensions)
        for row in 0..<rows {
            for column in 0..<dimensions {
                values[row * dimensions + column] = readInt32(bytes, at: row * rowBytes + 4 + 4 * column)
            }
        }
        return VectorFile(path: path, rows: rows, dimensions: dimensions, values: values)
    }

    /// Writes float vectors as .fvecs.
    public static func writeFvecs(_ path: String, rows: [[Float]]) throws {
        var out = [UInt8]()
        out.reserveCapacity(rows.reduce(0) { $0 + 4 + 4 * $1.count })
        for row in rows {
            withUnsafeBytes(of: Int32(row.count).littleEndian) { out.append(contentsOf: $0) }
            row.withUnsafeBytes { out.append(contentsOf: $0) }
        }
        try Data(out).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
