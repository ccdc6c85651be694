import ArgumentParser

@main
struct Sextant: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sextant",
        abstract: "Sextant: a vector database and retrieval stack.",
        subcommands: [Version.self, Bench.self, Debug.self])
}
