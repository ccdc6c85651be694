import ArgumentParser

@main
struct Sextant: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sextant",
        abstract: "Sextant: a vector database and retrieval stack.",
        subcommands: [
            UpCommand.self, EngineCommand.self, APICommand.self, IngestCommand.self, ImportCommand.self, ScrapeCommand.self, BotsCommand.self, BotCommand.self, BackupCommand.self, RestoreCommand.self, BackupsCommand.self, EmbedCommand.self, LoadCommand.self, Soak.self, CollectionsCommand.self, CountCommand.self, GetCommand.self, QueryCommand.self,
            Version.self, Bench.self, Debug.self,
        ])
}
