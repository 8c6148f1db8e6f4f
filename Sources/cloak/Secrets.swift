import Foundation

/// Recovery words and passphrases: a value on the command line lands in shell history and in
/// `ps`, so `-` (or leaving the option out where the command needs it) reads it instead from
/// standard input, without echo at a terminal.
enum Secrets {
    /// The option's value: read when it is `-`, as given otherwise.
    static func resolve(_ given: String?, prompt: String) throws(CLIError) -> String? {
        guard let given else { return nil }
        return given == "-" ? try read(prompt: prompt) : given
    }

    /// One line from standard input; at a terminal, `prompt` first and no echo while typing.
    static func read(prompt: String) throws(CLIError) -> String {
        let terminal = isatty(STDIN_FILENO) == 1
        var saved = termios()
        if terminal {
            FileHandle.standardError.write(Data("\(prompt): ".utf8))
            tcgetattr(STDIN_FILENO, &saved)
            var silent = saved
            silent.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &silent)
        }
        let line = readLine(strippingNewline: true)
        if terminal {
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved)
            FileHandle.standardError.write(Data("\n".utf8))
        }
        guard let line, !line.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw .usage("nothing was read for \(prompt.lowercased()) from standard input")
        }
        return line
    }
}
