import ArgumentParser
import CloakServerApp
import Foundation

/// `cloak-server recovery-keys generate | check FILE`: the recovery (OPRF) key file that
/// passphrase recovery needs (docs/operations.md "Recovery keys").
struct RecoveryKeys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recovery-keys",
        abstract: "Create or check the recovery key file (passphrase recovery needs it).",
        discussion: """
            The file lives apart from the database and its backups (chmod 600); serve reads it with \
            --recovery-key-file FILE, or takes its text from CLOAK_RECOVERY_KEYS. \
            See docs/operations.md "Recovery keys".
            """,
        subcommands: [Generate.self, Check.self])

    struct Generate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a new key file (redirect it to a file only you can read: umask 077).")

        func run() async throws {
            FileHandle.standardOutput.write(Data(RecoveryKeysCommand.generate().utf8))
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check a key file and print its versions (never a key).")

        @Argument(help: "The key file.")
        var file: String

        func run() async throws {
            guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
                complain("Cannot read \(file); check the path and that this user may read it.")
                throw ExitCode(2)
            }
            do { print(try RecoveryKeysCommand.check(text)) } catch {
                complain("\(error)")
                throw ExitCode(2)
            }
        }
    }
}
