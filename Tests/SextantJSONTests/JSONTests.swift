import SextantChroma
import SextantJSON
import SextantPayload
import Testing

@Suite struct JSONTests {
    @Test func keepsIntegersAndFloatsApart() throws {
        #expect(try JSON.parse("3") == .int(3))
        #expect(try JSON.parse("3.0") == .double(3))
        #expect(try JSON.parse("-12") == .int(-12))
        #expect(try JSON.parse("1e3") == .double(1000))
        #expect(try JSON.parse("-0.5E-2") == .double(-0.005))
        #expect(try JSON.parse("123456789012345678901234") == .double(123456789012345678901234.0))
        #expect(try JSON.parse("9007199254740993") == .int(9_007_199_254_740_993))
        // Floats are written so they read back as floats, and float32 values stay short.
        #expect(JSON.serialize(.double(3)) == "3.0")
        #expect(JSON.serialize(JSONValue.float(0.1)) == "0.1")
        // A double that happens to be exactly a float32 value still prints exactly
        // (found by FuzzJSON: 2^64 came back as 1.8446744e+19).
        for value in [18446744073709551616.0, Double(Float.greatestFiniteMagnitude), Double(Float(0.1))] {
            #expect(try JSON.parse(JSON.serialize(.double(value))) == .double(value))
        }
        #expect(try JSON.parse(JSON.serialize(.double(0.1))) == .double(0.1))
        #expect(JSON.serialize(.double(.nan)) == "null")
    }

    @Test func stringsEscapesAndUnicode() throws {
        #expect(try JSON.parse(#""a\"b\\c\/\n\t\u00e9\ud83d\ude00""#) == .string("a\"b\\c/\n\té😀"))
        let text = "line\nquote\" tab\t \u{01} ü 🎉"
        #expect(try JSON.parse(JSON.serialize(.string(text))) == .string(text))
        #expect(throws: JSONError.self) { try JSON.parse(#""\ud83d""#) }
        #expect(throws: JSONError.self) { try JSON.parse("\"raw\ncontrol\"") }
    }

    @Test func structureRoundTripsAndErrorsAreLocated() throws {
        let value = JSONValue.object(["a": .array([.int(1), .bool(true), .null, .object(["b": .string("c")])]), "d": .double(2.5)])
        #expect(try JSON.parse(JSON.serialize(value)) == value)
        #expect(try JSON.parse(" { } ") == .object([:]))
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "nul", "01x", "[1] 2", "{\"a\":}"] {
            #expect(throws: JSONError.self, "\(bad)") { try JSON.parse(bad) }
        }
        do {
            _ = try JSON.parse("[1, 2, x]")
            Issue.record("parsed garbage")
        } catch let error {
            #expect(error.offset == 7)
        }
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(throws: JSONError.self, "nesting is bounded") { try JSON.parse(deep) }
    }

    @Test func chromaWhereGrammar() throws {
        #expect(try ChromaGrammar.where(JSON.parse(#"{"a": 1}"#)) == .eq("a", .int(1)))
        #expect(try ChromaGrammar.where(JSON.parse(#"{"a": {"$gte": 1.5}}"#)) == .gte("a", .double(1.5)))
        #expect(try ChromaGrammar.where(JSON.parse(#"{"$or": [{"a": "x"}, {"b": {"$nin": [true]}}]}"#))
            == .or([.eq("a", .string("x")), .nin("b", [.bool(true)])]))
        #expect(try ChromaGrammar.where(JSON.parse(#"{"b": 2, "a": 1}"#)) == .and([.eq("a", .int(1)), .eq("b", .int(2))]))
        for bad in [#"{}"#, #"{"$and": []}"#, #"{"$xor": [{"a": 1}]}"#, #"{"a": {"$like": 1}}"#, #"{"a": {"$in": []}}"#, #"{"a": [1]}"#, "[]"] {
            #expect(throws: GrammarError.self, "\(bad)") { try ChromaGrammar.where(JSON.parse(bad)) }
        }
        #expect(try ChromaGrammar.whereDocument(JSON.parse(#"{"$contains": "x"}"#)) == .contains("x"))
        #expect(try ChromaGrammar.whereDocument(JSON.parse(#"{"$regex": "x+"}"#)) == .regex(DocumentRegex("x+")))
        #expect(try ChromaGrammar.whereDocument(JSON.parse(#"{"$not_regex": "^a"}"#)) == .notRegex(DocumentRegex("^a")))
        #expect(throws: GrammarError.self) { try ChromaGrammar.whereDocument(JSON.parse(#"{"$regex": "(x"}"#)) }
        #expect(throws: GrammarError.self) { try ChromaGrammar.whereDocument(JSON.parse(#"{"$regex": ""}"#)) }
        #expect(try ChromaGrammar.metadata(JSON.parse(#"{"a": 1, "b": null, "c": "x"}"#), path: "m") == ["a": .int(1), "c": .string("x")])
        #expect(throws: GrammarError.self) { try ChromaGrammar.metadata(JSON.parse(#"{"a": [1]}"#), path: "m") }
    }
}

@Suite struct JSONNumberTests {
    /// Every number is the correctly rounded double of its text (or the exact
    /// integer): the one-pass decimal path, Clinger's fast path and strtod alike,
    /// over the shapes embeddings arrive in and the edges between the paths.
    @Test func numbersParseToTheCorrectlyRoundedValue() throws {
        var state: UInt64 = 42
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        var texts = ["0", "-0", "7", "-12", "3.0", "-0.0", "0.5", "00.5", "0.000123", "123456789012345678", "-123456789012345678",
                     "1234567890123456789", "0.123456789012345", "0.1234567890123456", "0.12345678901234567",
                     "1.5e3", "-2.5E-7", "1e22", "1e23", "0.0000000000000000000001", "0.00000000000000000000001", "9007199254740993.0"]
        for _ in 0..<20_000 {
            let bits = UInt32(truncatingIfNeeded: next())
            let float = Float(bitPattern: bits & 0x3FFF_FFFF | (bits & 0x8000_0000))  // finite floats of every magnitude up to ~2
            texts.append("\(float)")                               // shortest float32 text (Swift, orjson)
            texts.append("\(Double(float))")                       // the same value widened (Python's json of a float32)
            texts.append("\(Double(bitPattern: next() >> 2))")     // tiny doubles (exponent notation)
            texts.append("\(Double(Int64(next() % 1_000_000_000_000)) / 1e6)")  // plain decimals of up to 18 digits
        }
        let body = "[" + texts.joined(separator: ",") + "]"
        let parsed = try #require(try JSON.parse(body).arrayValue)
        #expect(parsed.count == texts.count)
        for (text, value) in zip(texts, parsed) {
            let isInteger = !text.contains(".") && !text.lowercased().contains("e")
            if isInteger, let integer = Int64(text) {
                #expect(value == .int(integer), "\(text)")
            } else {
                let expected = try #require(Double(text))
                guard case .double(let actual) = value else { Issue.record("\(text) parsed as \(value)"); continue }
                #expect(actual.bitPattern == expected.bitPattern, "\(text): \(actual) vs \(expected)")
            }
        }
    }
}
