import ArgumentParser
import CloakServer
import CloakServerApp
import Foundation

struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a consistent copy of a SQLite database to a new file while the server runs.",
        discussion: """
            The copy is one moment of the database (SQLite's VACUUM INTO), with no WAL file to go with it; \
            restore it by stopping the server and putting the copy in the database file's place. \
            PostgreSQL databases are backed up with pg_dump instead: this command prints how. \
            See docs/operations.md "Backup and restore".

            """ + settingsHelp(Setting.store))

    @OptionGroup var common: CommonOptions

    @Option(help: "The new file to write (it must not exist yet).")
    var to: String

    func run() async throws {
        let settings = try await common.storeSettings()
        let location = try await report { try StoreLocation(parsing: settings.database) }
        switch location {
        case .sqlite:
            break
        case .postgres:
            complain(Self.postgresProcedure(location, to: to))
            throw ExitCode(2)
        case .memory:
            complain("An in-memory database has nothing to back up; back up a sqlite: or postgres:// database.")
            throw ExitCode(2)
        }
        var storeSettings = settings
        storeSettings.create = false
        let logger = storeSettings.logger()
        let store = try await storeSettings.open(logger)
        let written = await outcome { () async throws(StoreError) -> Void in
            guard let sqlite = store as? SQLiteServerStore else { return }
            try await sqlite.backup(to: to)
        }
        await store.close()
        try written.get()
        let size = (try? FileManager.default.attributesOfItem(atPath: to)[.size] as? Int64) ?? 0
        print("cloak-server: backed up \(location) to \(to) (\(ByteCount(size)))")
    }

    /// What to run instead for PostgreSQL (a consistent dump while servers run).
    static func postgresProcedure(_ location: StoreLocation, to file: String) -> String {
        """
        cloak-server backup copies SQLite databases. Back up PostgreSQL with pg_dump, which takes a consistent \
        snapshot while servers keep running:
          pg_dump --format=custom --file '\(file)' '\(location)'
        and restore into an empty database, with every cloak-server stopped:
          pg_restore --clean --if-exists --no-owner --dbname '\(location)' '\(file)'
        (docs/operations.md "Backup and restore" has the whole procedure; put the password in ~/.pgpass, not on the command line).
        """
    }
}
