import ArgumentParser
import SextantAnswers
import SextantRemoteModels

/// How LLM-style answers are made: shared by `api`, `bots` and `up` (which
/// passes them on to both children).
struct AnswerOptions: ParsableArguments {
    @Option(name: .customLong("answer-model"), help: "LLM for llm-style answers (web chat and bots): gemini:MODEL or openai:MODEL.")
    var answerModel: String?
    @Option(name: .customLong("answer-timeout-ms"), help: "Time an LLM answer may take before the extractive one is sent.")
    var answerTimeoutMilliseconds: Int64 = 15_000

    func validate() throws {
        guard answerTimeoutMilliseconds >= 100 else { throw ValidationError("--answer-timeout-ms must be at least 100") }
    }

    /// The model named by --answer-model, if any.
    func model() throws -> AnswerModel? {
        do { return try answerModel.map { try AnswerModel.make($0, policy: RemoteCallPolicy()) } } catch {
            throw ValidationError("\(error)")
        }
    }

    /// The same options for a child process.
    var arguments: [String] {
        guard let answerModel else { return [] }
        return ["--answer-model", answerModel, "--answer-timeout-ms", "\(answerTimeoutMilliseconds)"]
    }
}
