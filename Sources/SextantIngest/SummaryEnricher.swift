import Foundation
import SextantJSON
import SextantRemoteModels

/// The optional LLM step: a one-sentence summary per row from Gemini's
/// generateContent, stored as `summary` metadata. Rows go `batchRows` to a
/// request (numbered in the prompt, a JSON array asked back); requests run
/// concurrently up to the client's limit and retry on 429 / 5xx. A batch whose
/// reply is unusable is retried row by row; a row that still fails, or that
/// the run's request budget no longer covers, is ingested without a summary
/// and counted.
public struct SummaryEnricher: Enricher {
    public let name = "summary"
    let generator: GeminiGenerator
    let batchRows: Int
    let maximumInputCharacters: Int
    public static let maximumSummaryCharacters = 1_000

    public init(generator: GeminiGenerator, batchRows: Int = 8, maximumInputCharacters: Int = 4_000) {
        self.generator = generator
        self.batchRows = max(1, min(batchRows, 64))
        self.maximumInputCharacters = maximumInputCharacters
    }

    public func enrich(_ rows: [IngestRow]) async -> (rows: [IngestRow], failures: Int) {
        let batches = stride(from: 0, to: rows.count, by: batchRows).map { $0..<min($0 + batchRows, rows.count) }
        let summaries = await withTaskGroup(of: (Range<Int>, [String?]).self) { group in
            for range in batches {
                let texts = rows[range].map { String($0.document.prefix(maximumInputCharacters)) }
                group.addTask { (range, await summarise(texts)) }
            }
            var all = [String?](repeating: nil, count: rows.count)
            for await (range, results) in group {
                for (offset, summary) in results.enumerated() { all[range.lowerBound + offset] = summary }
            }
            return all
        }
        var enriched = rows
        var failures = 0
        for index in enriched.indices {
            if let summary = summaries[index] {
                enriched[index].metadata["summary"] = .string(String(summary.prefix(Self.maximumSummaryCharacters)))
            } else {
                failures += 1
            }
        }
        return (enriched, failures)
    }

    private func summarise(_ texts: [String]) async -> [String?] {
        if let batch = try? await request(texts) { return batch }
        guard texts.count > 1 else { return [nil] }
        var results: [String?] = []
        for text in texts { results.append((try? await request([text]))?.first ?? nil) }
        return results
    }

    private func request(_ texts: [String]) async throws -> [String?] {
        var prompt = """
            Summarise each of the following \(texts.count) texts in one short sentence.
            Reply with a JSON array of exactly \(texts.count) strings, in the same order.

            """
        for (index, text) in texts.enumerated() { prompt += "\n[\(index + 1)]\n\(text)\n" }
        let reply = try await generator.generate(prompt, json: true)
        guard let array = (try? JSON.parse(Array(reply.utf8)))?.arrayValue, array.count == texts.count else {
            throw RemoteModelError(.malformedReply, "expected a JSON array of \(texts.count) summaries")
        }
        return array.map { $0.stringValue.flatMap { $0.isEmpty ? nil : $0 } }
    }
}
