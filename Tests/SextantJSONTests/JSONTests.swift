import SextantClient
import SextantChroma
import SextantJSON
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
        #expect(JSON.serialize(.double(Double(Float(0.1)))) == "0.1")
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
        #expect(throws: GrammarError.self) { try ChromaGrammar.whereDocument(JSON.parse(#"{"$regex": "x"}"#)) }
        #expect(try ChromaGrammar.metadata(JSON.parse(#"{"a": 1, "b": null, "c": "x"}"#), path: "m") == ["a": .int(1), "c": .string("x")])
        #expect(throws: GrammarError.self) { try ChromaGrammar.metadata(JSON.parse(#"{"a": [1]}"#), path: "m") }
    }
}
