import CloakCrypto
import Testing

/// The recovery passphrase floor (ADV-46): clear refusals and clear passes, each with the
/// reason the estimator gives.
@Suite("Passphrase strength")
struct PassphraseStrengthTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let passphrase: String
        let reason: PassphraseStrength.Reason
        var testDescription: String { "\"\(passphrase)\" → \(reason)" }
    }

    static let refused: [Case] = [
        Case(passphrase: "", reason: .empty),
        Case(passphrase: "letmein", reason: .commonPassword),
        Case(passphrase: "P@ssw0rd", reason: .commonPassword),
        Case(passphrase: "password2024", reason: .commonPassword),
        Case(passphrase: "iloveyou", reason: .commonPassword),
        Case(passphrase: "Tr0ub4dor&3", reason: .tooFewWords),
        Case(passphrase: "correct horse battery staple", reason: .tooFewWords),
        Case(passphrase: "i love you so much my dear", reason: .tooFewWords),
        Case(passphrase: "the cat and the dog and the bird", reason: .tooFewWords),
        Case(passphrase: "qwertyuiopasdfghjkl1234567890", reason: .commonPassword),
        Case(passphrase: "poiuytrewq;lkjhgfdsa", reason: .predictablePattern),
        Case(passphrase: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", reason: .predictablePattern),
        Case(passphrase: "abcdefghijklmnopqrstuvwxyz", reason: .predictablePattern),
        Case(passphrase: "sunflower sunflower sunflower sunflower", reason: .predictablePattern),
        Case(passphrase: "01.02.1990 12/12/2012", reason: .predictablePattern),
        Case(passphrase: "19900102", reason: .predictablePattern),
        Case(passphrase: "x7#Qm9!v", reason: .tooShort),
    ]

    static let accepted: [String] = [
        // Five and six words drawn at random from the EFF long list.
        "unshaken gravy bonfire outsource cupcake",
        "Pelican-Mulch-Exclusive-Tremble-Juniper",
        "ladle cornea spinach ravine udder bloated",
        // Twelve BIP-0039 words (the recovery-words format) typed as a passphrase.
        "legal winner thank year wave sausage worth useful legal winner thank yellow",
        // Random characters, long enough.
        "x7#Qm9!vR2$kLp4&Zt8^",
    ]

    @Test("Refused below the floor, with the reason", arguments: refused)
    func refusedCases(_ test: Case) {
        let strength = PassphraseStrength(estimating: test.passphrase)
        #expect(!strength.isAcceptable, "\(strength)")
        #expect(strength.bits < PassphraseStrength.minimumBits)
        #expect(strength.reason == test.reason, "\(strength)")
    }

    @Test("Accepted at or above the floor", arguments: accepted)
    func acceptedCases(_ passphrase: String) {
        let strength = PassphraseStrength(estimating: passphrase)
        #expect(strength.isAcceptable, "\(strength)")
        #expect(strength.reason == .acceptable)
    }

    @Test("Word phrases: four random words fall short, five pass, each word adds about 12.9 bits")
    func wordCount() {
        let words = ["unshaken", "gravy", "bonfire", "outsource", "cupcake", "ladle"]
        let four = PassphraseStrength(estimating: words.prefix(4).joined(separator: " "))
        let five = PassphraseStrength(estimating: words.prefix(5).joined(separator: " "))
        let six = PassphraseStrength(estimating: words.joined(separator: " "))
        #expect(!four.isAcceptable && five.isAcceptable && six.isAcceptable)
        #expect(abs(six.bits - five.bits - 12.925) < 0.01)
        // Without separators the same letters still count as words, not 26 choices per letter.
        let run = PassphraseStrength(estimating: words.prefix(5).joined())
        #expect(run.bits <= five.bits + 13 && run.bits > 50)
    }

    @Test("Context words (app or user names) count as the first guesses")
    func contextWords() {
        let phrase = "cloakmessenger jonathan"
        let plain = PassphraseStrength(estimating: phrase)
        let informed = PassphraseStrength(estimating: phrase, contextWords: ["Cloak", "messenger", "Jonathan"])
        #expect(informed.bits < plain.bits)
        #expect(informed.bits < 10)
        let address = "jonathan.smith@example.com"
        #expect(PassphraseStrength(estimating: address, contextWords: [address]).bits <= 1)
    }

    @Test("Capitalisation and l33t add little to a common word")
    func variations() {
        let plain = PassphraseStrength(estimating: "dragon").bits
        #expect(PassphraseStrength(estimating: "Dragon").bits == plain + 1)
        #expect(PassphraseStrength(estimating: "DRAGON").bits == plain + 1)
        #expect(PassphraseStrength(estimating: "dr4g0n").bits == plain + 2)
    }

    @Test("Only the first 128 characters are analysed; the description never shows the passphrase")
    func longAndRedacted() {
        let long = String(repeating: "unshaken gravy bonfire outsource cupcake ", count: 50)
        let strength = PassphraseStrength(estimating: long)
        #expect(strength.isAcceptable)
        #expect(!String(describing: strength).contains("gravy"))
        #expect(String(describing: PassphraseStrength(estimating: "letmein")).hasPrefix("PassphraseStrength("))
    }
}
