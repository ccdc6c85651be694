import SextantKernels
import SextantPayload
import SextantProtocol
import SextantStorage

/// An error on its way to the wire: a status and a message for the client.
struct RequestError: Error {
    let status: StatusCode
    let message: String

    init(_ status: StatusCode, _ message: String) {
        self.status = status
        self.message = message
    }

    /// Maps whatever a handler threw to a status. Storage errors carry their
    /// kind; anything unexpected is INTERNAL (and logged by the caller).
    init(_ error: any Error) {
        switch error {
        case let error as RequestError: self = error
        case let error as StorageError:
            switch error {
            case .invalidArgument(let message): self.init(.invalidArgument, message)
            case .notFound(let message): self.init(.notFound, message)
            case .alreadyExists(let message): self.init(.alreadyExists, message)
            case .resourceExhausted(let message): self.init(.resourceExhausted, message)
            case .corrupted(let message): self.init(.dataLoss, message)
            case .io(let message): self.init(.unavailable, message)
            case .unavailable(let message): self.init(.unavailable, message)
            case .failedPrecondition(let message): self.init(.failedPrecondition, message)
            }
        case let error as ProtocolError: self.init(.invalidArgument, error.description)
        case let error as PayloadError: self.init(.invalidArgument, error.description)
        default: self.init(.internal, "internal error: \(error)")
        }
    }
}

/// Storage's types ⇄ the protocol's messages, for what the shared vocabulary
/// (`SextantProtocol/Wire.swift`) does not cover: collections, records,
/// replies and statistics.
enum Convert {
    static func metric(_ metric: Sextant_V1_Metric) throws(RequestError) -> Metric {
        switch metric {
        case .cosine: return .cosine
        case .innerProduct: return .innerProduct
        case .l2: return .l2
        case .UNRECOGNIZED(let raw): throw RequestError(.invalidArgument, "unknown metric \(raw)")
        }
    }

    static func metric(_ metric: Metric) -> Sextant_V1_Metric {
        switch metric {
        case .cosine: return .cosine
        case .innerProduct: return .innerProduct
        case .l2: return .l2
        }
    }

    static func quantization(_ wire: Sextant_V1_Quantization) throws(RequestError) -> Quantization {
        switch wire {
        case .default: return StorageLimits.defaultQuantization
        case .none: return .none
        case .int8: return .int8
        case .bits1: return .bits1
        case .UNRECOGNIZED(let raw): throw RequestError(.invalidArgument, "unknown quantization \(raw)")
        }
    }

    static func quantization(_ quantization: Quantization) -> Sextant_V1_Quantization {
        switch quantization {
        case .none: return .none
        case .int8: return .int8
        case .bits1: return .bits1
        }
    }

    /// A create request as a configuration; zero index parameters take the defaults.
    static func configuration(_ request: Sextant_V1_CreateCollectionRequest) throws -> CollectionConfiguration {
        var configuration = CollectionConfiguration(
            name: request.name, dimension: Int(request.dimension), metric: try metric(request.metric),
            quantization: try quantization(request.quantization), metadata: try Metadata(wire: request.metadata, path: "metadata"))
        func given(_ value: UInt32) -> Int? { value == 0 ? nil : Int(value) }
        configuration.setIndexParameters(
            m: given(request.hnsw.m), efConstruction: given(request.hnsw.efConstruction), ef: given(request.hnsw.ef))
        if request.hasTextIndex { configuration.textIndex = textIndex(request.textIndex) }
        configuration.sparseIndexes = request.sparseIndexes.map(sparseIndex)
        configuration.payloadIndexes = request.payloadIndexes
        if request.capacity > 0 {
            guard request.capacity <= UInt64(StorageLimits.maximumCollectionCapacity) else {
                throw RequestError(.invalidArgument, "capacity exceeds \(StorageLimits.maximumCollectionCapacity)")
            }
            configuration.capacity = Int(request.capacity)
        }
        return configuration
    }

    static func info(_ collection: Collection) -> Sextant_V1_CollectionInfo {
        let configuration = collection.configuration
        var info = Sextant_V1_CollectionInfo()
        info.id = configuration.id
        info.name = configuration.name
        info.dimension = UInt32(configuration.dimension)
        info.metric = metric(configuration.metric)
        info.hnsw.m = UInt32(configuration.m)
        info.hnsw.efConstruction = UInt32(configuration.efConstruction)
        info.hnsw.ef = UInt32(configuration.ef)
        info.metadata = configuration.collectionMetadata.wire
        info.count = UInt64(collection.count)
        info.createdAtSeconds = configuration.createdAtSeconds
        info.capacity = UInt64(collection.reservedSlots)
        info.quantization = quantization(configuration.quantization)
        if let settings = configuration.textIndex {
            info.textIndex.k1 = settings.k1
            info.textIndex.b = settings.b
        }
        info.sparseIndexes = configuration.sparseIndexes.map(sparseIndex)
        info.payloadIndexes = configuration.payloadIndexes
        return info
    }

    static func sparseIndex(_ wire: Sextant_V1_SparseIndex) -> SparseIndexSettings {
        SparseIndexSettings(key: wire.key, bm25: wire.bm25, sourceKey: wire.sourceKey.isEmpty ? nil : wire.sourceKey,
                            embeddingFunction: wire.embeddingFunction.isEmpty ? nil : wire.embeddingFunction)
    }

    static func sparseIndex(_ settings: SparseIndexSettings) -> Sextant_V1_SparseIndex {
        var wire = Sextant_V1_SparseIndex()
        wire.key = settings.key
        wire.bm25 = settings.bm25
        wire.sourceKey = settings.sourceKey ?? ""
        wire.embeddingFunction = settings.embeddingFunction ?? ""
        return wire
    }

    /// Both parameters zero means BM25's defaults (a message with no fields set).
    static func textIndex(_ wire: Sextant_V1_TextIndex) -> TextIndexSettings {
        wire.k1 == 0 && wire.b == 0 ? TextIndexSettings() : TextIndexSettings(k1: wire.k1, b: wire.b)
    }

    static func mode(_ wire: Sextant_V1_SearchMode) throws(RequestError) -> SearchMode {
        switch wire {
        case .semantic: return .semantic
        case .lexical: return .lexical
        case .hybrid: return .hybrid
        case .sparse: throw RequestError(.invalidArgument, "a sparse query is not a text or vector search mode")
        case .UNRECOGNIZED(let raw): throw RequestError(.invalidArgument, "unknown search mode \(raw)")
        }
    }

    static func fusion(_ wire: Sextant_V1_Fusion) -> RankFusion {
        RankFusion(k: wire.hasK ? wire.k : RankFusion.defaultK, semanticWeight: wire.hasSemanticWeight ? wire.semanticWeight : 1,
                   lexicalWeight: wire.hasLexicalWeight ? wire.lexicalWeight : 1)
    }

    /// Records of a write request, with their vectors matched up and checked.
    /// `records` are the request's records decoded by hand (`WireRecord`);
    /// `request` carries everything else.
    static func records(_ request: Sextant_V1_WriteRequest, _ records: [WireRecord], dimension: Int, isUpdate: Bool,
                        pace: () -> Void = {}) throws -> [RecordInput] {
        let count = records.count
        guard count > 0 else { throw RequestError(.invalidArgument, "the batch is empty") }
        guard count <= ProtocolLimits.maximumBatchRecords else {
            throw RequestError(.invalidArgument, "batch of \(count) records exceeds \(ProtocolLimits.maximumBatchRecords)")
        }
        var vectors: [[Float]?] = Array(repeating: nil, count: count)
        if request.hasVectors, request.vectors.count > 0 {
            // A collection created without a dimension (0) takes its first write's.
            guard dimension == 0 || Int(request.vectors.dimension) == dimension else {
                throw RequestError(.invalidArgument, "vectors have \(request.vectors.dimension) dimensions, the collection has \(dimension)")
            }
            let rows = try request.vectors.rows(pace: pace)
            if request.vectorRecordIndices.isEmpty {
                guard rows.count == count else {
                    throw RequestError(.invalidArgument, "\(rows.count) vectors for \(count) records")
                }
                for index in 0..<count { vectors[index] = rows[index] }
            } else {
                guard isUpdate else { throw RequestError(.invalidArgument, "vector_record_indices is only for updates") }
                guard rows.count == request.vectorRecordIndices.count else {
                    throw RequestError(.invalidArgument, "\(rows.count) vectors for \(request.vectorRecordIndices.count) indices")
                }
                for (row, index) in zip(rows, request.vectorRecordIndices) {
                    guard Int(index) < count, vectors[Int(index)] == nil else {
                        throw RequestError(.invalidArgument, "vector_record_indices: \(index) is out of range or repeated")
                    }
                    vectors[Int(index)] = row
                }
            }
        } else if !isUpdate {
            throw RequestError(.invalidArgument, "every record needs a vector")
        }
        var result: [RecordInput] = []
        result.reserveCapacity(count)
        for (index, record) in records.enumerated() {
            pace()
            result.append(RecordInput(id: record.id, vector: vectors[index], document: record.document, metadata: record.metadata))
        }
        assert(result.count == count, "one record input per record")
        return result
    }

    static let defaultQueryInclude = Include.queryDefault.wire()
    static let defaultGetInclude = Include.getDefault.wire()

    /// Records (and their vectors, when asked) in reply form.
    static func reply(_ records: [RecordView], include: Sextant_V1_Include, dimension: Int) -> Sextant_V1_GetReply {
        var reply = Sextant_V1_GetReply()
        reply.records = records.map { record in
            var out = Sextant_V1_RecordResult()
            out.id = record.id
            if let document = record.document { out.document = document }
            if let metadata = record.metadata { out.metadata = metadata.wire }
            if let distance = record.distance { out.distance = distance }
            if let score = record.score { out.score = score }
            return out
        }
        if include.vectors {
            reply.vectors = Sextant_V1_Vectors(
                rows: records.map { $0.vector ?? [Float](repeating: 0, count: dimension) }, dimension: dimension,
                encoding: include.vectorEncoding)
        }
        return reply
    }

    static func writeReply(_ outcome: WriteOutcome) -> Sextant_V1_WriteReply {
        var reply = Sextant_V1_WriteReply()
        reply.lsn = outcome.lsn
        reply.affected = UInt64(outcome.affected)
        return reply
    }

    static func stats(_ collections: [Collection], replica: Bool = false) -> Sextant_V1_StatsReply {
        var reply = Sextant_V1_StatsReply()
        reply.collections = collections.map { collection in
            let stats = collection.stats()
            var out = Sextant_V1_CollectionStats()
            out.id = collection.id
            out.name = collection.name
            out.liveRecords = UInt64(stats.liveRecords)
            out.unindexedRecords = UInt64(stats.unindexedRecords)
            out.indexedRecords = UInt64(stats.indexedRecords)
            out.deletedAwaitingReclaim = UInt64(stats.deletedAwaitingReclaim)
            out.lastLsn = stats.lastLSN
            out.durableLsn = stats.durableLSN
            out.checkpointLsn = stats.checkpointLSN
            out.generation = stats.generation
            out.walBytes = UInt64(stats.walBytes)
            out.diskBytes = UInt64(stats.diskBytes)
            out.capacitySlots = UInt64(stats.capacitySlots)
            out.vectorBytes = UInt64(stats.vectorBytes)
            out.graphBytes = UInt64(stats.graphBytes)
            out.codeBytes = UInt64(stats.codeBytes)
            out.heapBytes = UInt64(stats.heapBytes)
            out.residentSearchBytes = UInt64(stats.residentSearchBytes)
            if replica {
                out.replica = true
                // Before the first round found the end of the shipped log, the lag is unknown: the most a uint64 holds.
                out.replicaLagMilliseconds = collection.replicaLagMilliseconds ?? UInt64.max
            }
            return out
        }
        return reply
    }
}
