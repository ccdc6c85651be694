/// The comparison every door uses to check a presented secret (the engine's
/// token in Hello, the search API's key): its time depends on the lengths
/// alone, never on how many leading bytes match.
public enum Tokens {
    public static func equal(_ presented: String, _ expected: String) -> Bool {
        let left = Array(presented.utf8)
        let right = Array(expected.utf8)
        var difference: UInt8 = left.count == right.count ? 0 : 1
        for index in 0..<max(left.count, right.count) {
            difference |= (index < left.count ? left[index] : 0) ^ (index < right.count ? right[index] : 0)
        }
        return difference == 0
    }
}
