import ArgumentParser
import CloakProtocol
import CloakServer
import CloakServerApp
import Foundation

struct Accounts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, show, block, unblock or erase accounts (sizes and times only: never content).",
        subcommands: [List.self, Show.self, Block.self, Unblock.self, Delete.self])

    /// Opens the store named by the common options and runs `body` on it.
    static func withStore(_ common: CommonOptions, _ body: (any ServerStore) async throws(StoreError) -> String)
        async throws
    {
        var settings = try await common.storeSettings()
        settings.create = false
        let store = try await settings.open(settings.logger())
        let text = await outcome { () async throws(StoreError) -> String in try await body(store) }
        await store.close()
        print(try text.get())
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Accounts with their devices, change sets, stored bytes and last write.",
            discussion: settingsHelp(Setting.store))

        @OptionGroup var common: CommonOptions

        @Option(help: "Start after this account id (the last one of the previous page).")
        var after: String?

        @Option(help: "Accounts per page.")
        var limit = 100

        func run() async throws {
            let start = try await report { try after.map { text throws(ConfigurationError) in try AccountsAdmin.account(text) } }
            try await withStore(common) { store throws(StoreError) in
                try await AccountsAdmin.list(store, after: start, limit: max(1, limit))
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One account in detail.", discussion: settingsHelp(Setting.store))

        @Argument(help: "The account id (64 hexadecimal digits).") var account: String
        @OptionGroup var common: CommonOptions

        func run() async throws {
            let id = try await report { try AccountsAdmin.account(account) }
            try await withStore(common) { store throws(StoreError) in try await AccountsAdmin.show(store, id) }
        }
    }

    struct Block: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Refuse the account's authentications (ACCOUNT_BLOCKED) and close its connections.",
            discussion: settingsHelp(Setting.store))

        @Argument(help: "The account id (64 hexadecimal digits).") var account: String
        @OptionGroup var common: CommonOptions

        func run() async throws {
            let id = try await report { try AccountsAdmin.account(account) }
            try await withStore(common) { store throws(StoreError) in try await AccountsAdmin.block(store, id, blocked: true) }
        }
    }

    struct Unblock: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Let a blocked account's devices authenticate again.", discussion: settingsHelp(Setting.store))

        @Argument(help: "The account id (64 hexadecimal digits).") var account: String
        @OptionGroup var common: CommonOptions

        func run() async throws {
            let id = try await report { try AccountsAdmin.account(account) }
            try await withStore(common) { store throws(StoreError) in try await AccountsAdmin.block(store, id, blocked: false) }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Erase every row of the account in every table (the right to erasure) and report what was erased.",
            discussion: "Backups taken before keep their copy; rotate them out.\n\n" + settingsHelp(Setting.store))

        @Argument(help: "The account id (64 hexadecimal digits).") var account: String
        @Flag(help: "Erase without asking (for scripts).") var yes = false
        @OptionGroup var common: CommonOptions

        func run() async throws {
            let id = try await report { try AccountsAdmin.account(account) }
            if !yes {
                FileHandle.standardError.write(Data("Erase account \(account) and everything it stored? Type yes: ".utf8))
                guard readLine()?.trimmingCharacters(in: .whitespaces).lowercased() == "yes" else {
                    complain("Nothing was erased.")
                    throw ExitCode(1)
                }
            }
            try await withStore(common) { store throws(StoreError) in try await AccountsAdmin.erase(store, id) }
        }
    }
}
