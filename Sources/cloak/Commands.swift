import ArgumentParser
import CloakCRDT
import CloakClient
import CloakCrypto
import CloakProtocol
import Foundation

struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create a new account with this device.")
    @OptionGroup var options: DeviceOptions

    func run() async throws {
        try await withClient(options, sync: false) { client in
            try await client.createAccount()
            let account = await client.accountID
            print("account \(account?.hex ?? "?") created; this device is \(client.deviceID.hex)")
        }
    }
}

struct Link: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Link this new device: prints an invitation to enter on an existing device, then waits.",
        discussion: """
            Both devices then show a 6-digit code. Nothing joins unless the user says the codes match on \
            both devices. Run it again after an interruption: an unfinished invitation resumes.
            """)
    @OptionGroup var options: DeviceOptions
    @Flag(name: .long, help: "Say yes without asking to compare the 6 digits (scripts only).")
    var yes = false

    func run() async throws {
        try await withClient(options, sync: false) { client in
            let invitation = try await client.beginLink()
            print("On a device already in the account, run:\n\n  cloak accept \(invitation.text)\n")
            print("Waiting (the invitation expires in 10 minutes)…")
            fflush(nil)  // all streams: the other terminal (or a script reading a pipe) needs it now
            let pending = try await client.awaitLink(invitation)
            print("Security code: \(pending.shortAuthenticationString)")
            let match = SecretInput.confirm("Does the other device show the same code?", assumeYes: yes)
            if !match { print("Telling the other device…") } else { print("Waiting for the other device to confirm…") }
            fflush(nil)
            try await client.confirmLink(pending, codesMatch: match)
            guard match else {
                throw CLIError.failed("link cancelled: nothing joined; run `cloak link` again for a new invitation")
            }
            await client.startSync()
            _ = await client.waitUntilSynced(timeout: .seconds(60))
            print("linked to account \(pending.accountID.hex); \(await client.conversations().count) conversations")
        }
    }
}

struct Accept: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Accept a new device's invitation: compare the codes, then add it.",
        discussion: "Nothing is added unless the codes match and the user says so on both devices.")
    @OptionGroup var options: DeviceOptions
    @Flag(name: .long, help: "Say yes without asking to compare the 6 digits (scripts only).")
    var yes = false
    @Argument(help: "The invitation text the new device printed (cloak1:…); read from standard input if omitted.")
    var invitation: String?

    func run() async throws {
        let text = invitation ?? readLine() ?? ""
        try await withClient(options) { client in
            let offer = try await client.acceptLink(text)
            print("Security code: \(offer.shortAuthenticationString)")
            let match = SecretInput.confirm("Does the new device show the same code?", assumeYes: yes)
            if match { print("Waiting for the new device to confirm…") }
            fflush(nil)
            try await client.completeLink(offer, codesMatch: match)
            guard match else { throw CLIError.failed("link cancelled: nothing was added; the new device was told") }
            print("added device \(offer.newDevice.hex); it can now read the account")
        }
    }
}

struct Devices: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the account's devices.")
    @OptionGroup var options: DeviceOptions

    func run() async throws {
        try await withClient(options) { client in
            for device in try await client.devices() {
                let marks = [device.isThisDevice ? "this device" : nil, device.isActive ? nil : "removed"]
                    .compactMap { $0 }.joined(separator: ", ")
                print("\(device.id.hex)  added \(device.addedAt)\(marks.isEmpty ? "" : "  (\(marks))")")
            }
        }
    }
}

struct Remove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Remove a device (a lost phone) and rotate the keys.")
    @OptionGroup var options: DeviceOptions
    @Argument(help: "The device id (hex, as `cloak devices` prints it).")
    var device: String

    func run() async throws {
        guard let bytes = try? Hex.decode(device), let id = try? DeviceID(validating: bytes, field: "device") else {
            throw CLIError.usage("a device id is 32 hex digits")
        }
        try await withClient(options) { client in
            try await client.removeDevice(id)
            print("removed \(id.hex); new messages use a key it never receives")
        }
    }
}

struct RecoverySetup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recovery-setup", abstract: "Set recovery words (printed once) or a recovery passphrase.",
        discussion: """
            The passphrase is read from the terminal without echo (or from standard input), never from \
            the command line, and must be strong (about 60 bits: five random words pass). Replacing an \
            existing secret starts a new key epoch and the old one stops working; you are asked first.
            """)
    @OptionGroup var options: DeviceOptions
    @Flag(name: .long, help: "Set a passphrase (prompted) instead of generated words.")
    var passphrase = false
    @Flag(name: .long, help: "Replace an existing recovery secret without asking (scripts only).")
    var replace = false

    func run() async throws {
        try await withClient(options) { client in
            var replacing = false
            if await client.recoveryIsSet {
                print("This account already has a recovery secret. Replacing it starts a new key epoch: the old words or")
                print("passphrase stop working and open nothing written from now on.")
                guard SecretInput.confirm("Replace it?", assumeYes: replace) else {
                    throw CLIError.failed("nothing changed: the existing recovery secret stays")
                }
                replacing = true
            }
            if passphrase {
                try await client.setUpRecoveryPassphrase(try SecretInput.newPassphrase(), replacing: replacing)
                print("recovery passphrase set; you will also need the account id: \(await client.accountID?.hex ?? "")")
            } else {
                let words = try await client.setUpRecoveryWords(replacing: replacing)
                print("Write these 12 words down; they restore the account on a new device:\n\n  \(words)\n")
            }
        }
    }
}

struct Recover: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Restore the account on this fresh device.",
        discussion: """
            The words or the passphrase are read from the terminal without echo (or from standard input), \
            never from the command line. Every passphrase attempt counts with the server, which tells the \
            account's devices and locks recovery after too many. Run it again after an interruption.
            """)
    @OptionGroup var options: DeviceOptions
    @Flag(name: .long, help: "Recover with the 12 recovery words (prompted).")
    var words = false
    @Option(name: .long, help: "The account id (with --passphrase).")
    var account: String?
    @Flag(name: .long, help: "Recover with the recovery passphrase (prompted; needs --account).")
    var passphrase = false

    func run() async throws {
        try await withClient(options, sync: false) { client in
            if await client.hasInterruptedRecovery {
                print("Finishing an interrupted recovery…")
                try await client.resumeRecovery()
            } else if words {
                try await client.recover(words: try SecretInput.line(prompt: "Recovery words: "))
            } else if passphrase, let account {
                guard let bytes = try? Hex.decode(account), let id = try? AccountID(validating: bytes, field: "account")
                else { throw CLIError.usage("an account id is 64 hex digits") }
                try await client.recover(account: id, passphrase: try SecretInput.line(prompt: "Recovery passphrase: "))
            } else {
                throw CLIError.usage("give --words, or --account ID --passphrase (the secret is asked for, not an argument)")
            }
            await client.startSync()
            _ = await client.waitUntilSynced(timeout: .seconds(60))
            print("recovered; this device is \(client.deviceID.hex); \(await client.conversations().count) conversations")
        }
    }
}

struct Send: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Add a message to a conversation.")
    @OptionGroup var options: DeviceOptions
    @Option(name: .long, help: "Conversation id (hex); see `cloak show`.")
    var conversation: String?
    @Option(name: .long, help: "Create a new conversation with this title.")
    var new: String?
    @Option(name: .long, help: "user, assistant, system or tool.")
    var role: String = "user"
    @Option(name: .long, help: "Send the message this many times (numbered), printing each as it is accepted.")
    var `repeat`: Int = 1
    @Argument(help: "The message text.")
    var text: String

    func run() async throws {
        let roles: [String: MessageRole] = ["user": .user, "assistant": .assistant, "system": .system, "tool": .tool]
        guard let messageRole = roles[role] else { throw CLIError.usage("--role must be user, assistant, system or tool") }
        try await withClient(options) { client in
            let id: ConversationID
            if let new {
                id = try await client.createConversation(title: new)
            } else if let conversation {
                id = try parseConversation(conversation)
            } else if let first = await client.conversations().first {
                id = first.id
            } else {
                id = try await client.createConversation(title: "Notes")
            }
            if `repeat` <= 1 {
                try await client.appendMessage(to: id, role: messageRole, text: text)
                print("sent to \(id.hex)")
                return
            }
            FileHandle.standardOutput.write(Data("conversation \(id.hex)\n".utf8))
            for index in 0..<`repeat` {
                // Each call returns only once the message is durable on this device.
                try await client.appendMessage(to: id, role: messageRole, text: "\(text) \(index)")
                FileHandle.standardOutput.write(Data("accepted \(index)\n".utf8))  // unbuffered: a kill must not lose it
            }
        }
    }
}

struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Sync, then print conversations.")
    @OptionGroup var options: DeviceOptions
    @Option(name: .long, help: "Only this conversation (hex id).")
    var conversation: String?

    func run() async throws {
        try await withClient(options) { client in
            let only = try conversation.map(parseConversation)
            for summary in await client.conversations() where only == nil || summary.id == only {
                print("== \(summary.title ?? "(untitled)")  [\(summary.id.hex)]")
                for message in await client.conversation(summary.id)?.messages ?? [] where !message.isDeleted {
                    let branch = message.siblingCount > 1 ? " (\(message.siblingIndex + 1)/\(message.siblingCount))" : ""
                    let reactions = message.reactions.map(\.emoji).joined()
                    print("  \(message.role): \(message.text)\(branch)\(reactions.isEmpty ? "" : "  \(reactions)")")
                }
            }
        }
    }
}

struct Sync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stay connected and sync for a while.")
    @OptionGroup var options: DeviceOptions
    @Option(name: .long, help: "Seconds to stay connected.")
    var seconds: Int = 10

    func run() async throws {
        try await withClient(options) { _ in
            try await Task.sleep(for: .seconds(seconds))
        }
    }
}
