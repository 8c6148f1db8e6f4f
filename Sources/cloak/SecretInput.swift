import CloakClient
import CloakCrypto
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Reads recovery passphrases and words: from the terminal without echo, or from standard input
/// when it is not a terminal (scripts pipe them in). Never from the command line, where other
/// users see them in the process list and shells keep them in history. The bytes read are
/// wiped; the `String` the client needs cannot be, so it is dropped as soon as it is used.
enum SecretInput {
    /// One line, without its line break. Throws when nothing can be read (end of input).
    static func line(prompt: String) throws -> String {
        let terminal = isatty(STDIN_FILENO) == 1
        var saved = termios()
        if terminal {
            FileHandle.standardError.write(Data(prompt.utf8))
            tcgetattr(STDIN_FILENO, &saved)
            var quiet = saved
            quiet.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet)
        }
        defer {
            if terminal {
                tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved)
                FileHandle.standardError.write(Data("\n".utf8))
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(1024)
        defer { SecretBytes.wipe(&bytes) }
        var byte: UInt8 = 0
        while read(STDIN_FILENO, &byte, 1) == 1 {
            if byte == 0x0A { break }
            // A line longer than any passphrase Cloak takes is refused, not buffered without end.
            guard bytes.count < 4096 else { throw CLIError.usage("that line is too long for a passphrase or words") }
            bytes.append(byte)
        }
        byte = 0
        if bytes.last == 0x0D { bytes.removeLast() }
        guard !bytes.isEmpty else { throw CLIError.usage("nothing was entered") }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw CLIError.usage("that is not UTF-8 text")
        }
        return text
    }

    /// A new passphrase: checked against the floor before anything is sent, and typed twice on
    /// a terminal.
    static func newPassphrase() throws -> String {
        let first = try line(prompt: "New recovery passphrase (at least five random words): ")
        let strength = CloakClient.passphraseStrength(first)
        guard strength.isAcceptable else { throw ClientError.weakPassphrase(strength) }
        if isatty(STDIN_FILENO) == 1 {
            let again = try line(prompt: "The same passphrase again: ")
            guard again == first else { throw CLIError.usage("the two passphrases differ; nothing was changed") }
        }
        return first
    }

    /// A yes/no question on the terminal (no: anything but y or yes); `assumeYes` skips it.
    static func confirm(_ question: String, assumeYes: Bool) -> Bool {
        if assumeYes { return true }
        FileHandle.standardOutput.write(Data("\(question) [y/N] ".utf8))
        fflush(nil)
        let answer = readLine()?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
        return answer == "y" || answer == "yes"
    }
}
