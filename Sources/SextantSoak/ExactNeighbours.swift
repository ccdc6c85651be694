import COpenBLAS
import SextantDatasets

/// Exact nearest neighbours by cosine over the rows of a vector file that a
/// predicate keeps: the ground truth of a live set that changes every day.
/// Rows are read a block at a time and scored against every query with one
/// sgemm, so a million live rows and a few hundred queries take seconds.
public enum ExactNeighbours {
    public static let blockRows = 4_096

    /// For each query, the `k` best rows in `rows` with `isLive(row)`, best first.
    public static func search(_ queries: [[Float]], in reader: FvecsReader, rows: Range<Int>, k: Int,
                       isLive: (Int) -> Bool) throws -> [[Int]] {
        let dimensions = reader.dimensions
        precondition(queries.allSatisfy { $0.count == dimensions }, "queries match the file's dimension")
        precondition(k >= 1, "k is at least 1")
        let queryCount = queries.count
        var normalized = [Float](repeating: 0, count: queryCount * dimensions)
        for (index, query) in queries.enumerated() {
            let norm = max(query.reduce(0) { $0 + $1 * $1 }.squareRoot(), .leastNormalMagnitude)
            for d in 0..<dimensions { normalized[index * dimensions + d] = query[d] / norm }
        }
        var best = [[(score: Float, row: Int)]](repeating: [], count: queryCount)
        var block = [Float](repeating: 0, count: blockRows * dimensions)
        var scores = [Float](repeating: 0, count: queryCount * blockRows)
        var inverseNorms = [Float](repeating: 0, count: blockRows)
        var start = rows.lowerBound
        while start < rows.upperBound {
            let count = min(blockRows, rows.upperBound - start)
            if (start..<start + count).contains(where: isLive) {
                try block.withUnsafeMutableBufferPointer { (buffer) throws in
                    guard let base = buffer.baseAddress else { return }
                    try reader.read(start, count: count, into: base)
                }
                for row in 0..<count {
                    var sum: Float = 0
                    for d in 0..<dimensions { sum += block[row * dimensions + d] * block[row * dimensions + d] }
                    inverseNorms[row] = 1 / max(sum.squareRoot(), .leastNormalMagnitude)
                }
                normalized.withUnsafeBufferPointer { a in
                    block.withUnsafeBufferPointer { b in
                        scores.withUnsafeMutableBufferPointer { c in
                            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(queryCount), Int32(count), Int32(dimensions),
                                        1, a.baseAddress, Int32(dimensions), b.baseAddress, Int32(dimensions),
                                        0, c.baseAddress, Int32(blockRows))
                        }
                    }
                }
                for row in 0..<count where isLive(start + row) {
                    for query in 0..<queryCount {
                        let score = scores[query * blockRows + row] * inverseNorms[row]
                        if best[query].count < k {
                            best[query].append((score, start + row))
                            if best[query].count == k { best[query].sort { $0.score > $1.score } }
                        } else if score > best[query][k - 1].score {
                            var position = k - 1
                            while position > 0 && best[query][position - 1].score < score {
                                best[query][position] = best[query][position - 1]
                                position -= 1
                            }
                            best[query][position] = (score, start + row)
                        }
                    }
                }
            }
            start += count
        }
        return best.map { list in list.sorted { $0.score > $1.score }.map(\.row) }
    }
}
