import ArgumentParser
import CloakServerApp
import Foundation

/// `cloak-server recovery-keys generate | check FILE | rotate FILE`: the recovery (OPRF) key file that
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
        subcommands: [Generate.self, Check.self, Rotate.self])

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

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a new key version to a key file and make it current (older versions stay).",
            discussion: """
                New passphrase enrollments use the new version; existing ones keep theirs until their \
                users set a passphrase again, so never delete an older version while enrollments use it. \
                Restart every server sharing the database with the new file. See docs/operations.md.
                """)

        @Argument(help: "The key file (rewritten in place, mode 0600).")
        var file: String

        func run() async throws {
            guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
                complain("Cannot read \(file); check the path and that this user may read it.")
                throw ExitCode(2)
            }
            let rotated: (text: String, version: UInt32)
            do { rotated = try RecoveryKeysCommand.rotate(text) } catch {
                complain("\(error)")
                throw ExitCode(2)
            }
            // Written beside it, private from the start, then renamed over it: a crash leaves
            // either file whole, never a half-written key.
            let temporary = file + ".rotating"
            guard FileManager.default.createFile(
                atPath: temporary, contents: Data(rotated.text.utf8), attributes: [.posixPermissions: 0o600])
            else {
                complain("Cannot write \(temporary); check that this user may write in its directory.")
                throw ExitCode(2)
            }
            // rename(2) replaces atomically (Foundation's replaceItemAt does not on Linux).
            guard rename(temporary, file) == 0 else {
                try? FileManager.default.removeItem(atPath: temporary)
                complain("Cannot replace \(file) (error \(errno)); check that this user may write in its directory.")
                throw ExitCode(2)
            }
            print(
                "recovery keys: version \(rotated.version) added and current; older versions kept. "
                    + "Restart the servers with this file and update its offline copy.")
        }
    }
}

