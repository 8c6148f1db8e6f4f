/// An estimate of how many guesses a recovery passphrase withstands, in bits, with the reason
/// for a refusal. Cloak refuses passphrases below ``minimumBits`` before enrolling them.
///
/// ```swift
/// let strength = PassphraseStrength(estimating: candidate, contextWords: ["cloak", userName])
/// guard strength.isAcceptable else {
///     showHint(strength.reason)      // .commonPassword, .tooFewWords, .predictablePattern, …
///     return
/// }
/// ```
///
/// **Why a floor, with the OPRF in place.** Outsiders get a handful of rate-limited online
/// guesses, but whoever holds both the server's OPRF key and its database can guess offline at
/// Argon2id cost (PROTOCOL.md §22). The floor is for that attacker: 2^60 guesses at a quarter
/// second of one core each is out of reach, 2^40 is not.
///
/// **Method** (a simplified zxcvbn: Wheeler, USENIX Security 2016). The passphrase (its first
/// ``analyzedCharactersMax`` characters) is covered left to right by the cheapest sequence of
/// matches, found by dynamic programming; the estimate is the sum of the matches' costs in bits
/// (log2 of the guesses an attacker who knows the pattern needs):
///
/// - *common passwords* and *common words*: small embedded lists in rank order (``PassphraseLists``),
///   matched after lowercasing and undoing l33t substitutions; cost log2(rank + 1), plus 1 bit
///   per substituted character and the capitalisation bits below. Context words the caller
///   passes (app name, user name, e-mail) count as rank 1;
/// - *other words*: a run of up to 8 ASCII letters costs at most log2(7776) ≈ 12.9 bits, one
///   word of a 7,776-word list (the EFF long list, from which a generator would draw), or less
///   if brute force over its letters is cheaper. A longer run is split into several such words.
///   Without an embedded dictionary the estimator cannot tell words from random letters, so it
///   assumes words: random lowercase strings are underestimated, never overestimated;
/// - *patterns*: runs along a keyboard row (`asdfgh`), alphabetical or numeric sequences
///   (`abcd`, `9876`), one character repeated, a repeat of an earlier part of the passphrase,
///   years 1900–2039 and 6- or 8-digit dates; each costs log2 of its few parameters (start,
///   length, direction, position of the copy, day/month/year);
/// - *anything else*: brute force per character: 26 for a lowercase letter, 52 for an
///   uppercase one, 10 for a digit, 33 for ASCII punctuation, 100 for any other character;
/// - *separators* (space, `-`, `_`, `.`, `,`, `+`, `/`): free when they repeat the passphrase's
///   first separator (word phrases), brute force otherwise;
/// - *capitalisation* of a letter match: 0 bits for lowercase, 1 bit for a capital first letter
///   or all capitals, else log2 of the number of ways to place the capitals.
///
/// So five random words of the EFF list score about 64 bits and pass; four score about 52 and
/// do not. Like every meter, this one can overrate passphrases built from material it does not
/// know (names, quotes, song lyrics); the floor keeps a margin, and the app's default is a
/// generated phrase, whose strength is exact.
public struct PassphraseStrength: Sendable, Equatable, CustomStringConvertible {
    /// The floor: passphrases estimated below it are refused.
    public static let minimumBits = 60.0
    /// Characters analysed; a longer passphrase scores at least what its prefix does, and
    /// this prefix is long enough to pass the floor with room to spare.
    public static let analyzedCharactersMax = 128

    /// Why a passphrase scored as it did: the kind of match covering most of it, when refused.
    public enum Reason: String, Sendable, Equatable {
        /// At or above ``PassphraseStrength/minimumBits``.
        case acceptable
        /// Nothing was entered.
        case empty
        /// Mostly a well-known password (`letmein`, `P@ssw0rd`).
        case commonPassword
        /// A phrase of too few words, or of words too common to count for much.
        case tooFewWords
        /// Mostly keyboard runs, sequences, repeats or dates.
        case predictablePattern
        /// Random-looking characters, but too few of them.
        case tooShort
    }

    /// The estimate, in bits (log2 of the guesses needed).
    public let bits: Double
    /// Why: ``Reason/acceptable`` or the main weakness.
    public let reason: Reason

    /// True when the estimate reaches ``minimumBits``.
    public var isAcceptable: Bool { reason == .acceptable }

    /// Estimates `passphrase`. `contextWords` are strings an attacker would try first for this
    /// user (the app's name, the user's name or address); matching them costs 1 bit.
    public init(estimating passphrase: String, contextWords: [String] = []) {
        let characters = Array(passphrase.prefix(Self.analyzedCharactersMax))
        guard !characters.isEmpty else {
            self.init(bits: 0, reason: .empty)
            return
        }
        let analysis = PassphraseAnalysis(characters, contextWords: contextWords)
        let bits = analysis.bits
        self.init(bits: bits, reason: bits >= Self.minimumBits ? .acceptable : analysis.weakness)
    }

    init(bits: Double, reason: Reason) {
        self.bits = bits
        self.reason = reason
    }

    /// The estimate and the reason, never the passphrase.
    public var description: String {
        "PassphraseStrength(\(Int(bits.rounded(.down))) bits, \(reason.rawValue))"
    }
}
