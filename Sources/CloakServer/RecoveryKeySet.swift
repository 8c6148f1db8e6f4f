public import CloakCrypto
import CloakProtocol

/// The server's recovery (OPRF) keys: one 32-byte seed per key version, and the version new
/// enrollments use (PROTOCOL.md §22). They live apart from the database — a key file or an
/// environment secret given to `cloak-server` — so a copy of the database alone allows no
/// passphrase guessing (ADV-46).
///
/// ```swift
/// let keys = try RecoveryKeySet(parsing: try String(contentsOfFile: path))
/// let key = try keys.key(for: account, version: keys.current)   // RFC 9497 DeriveKeyPair
/// ```
///
/// The text form, one item per line (`#` starts a comment):
///
///     cloak-recovery-keys 1
///     key 1 <64 hex digits: the seed of version 1>
///     key 2 <64 hex digits>
///     current 2
///
/// Seeds are held in ``SecretBytes`` and never printed.
public struct RecoveryKeySet: Sendable, Equatable, CustomStringConvertible {
    /// The first line of the text form.
    public static let header = "cloak-recovery-keys 1"

    /// The version new enrollments are evaluated under.
    public let current: UInt32
    private let seeds: [UInt32: SecretBytes]

    /// A set of seeds; `current` must be one of them, and every seed 32 bytes.
    public init(seeds: [UInt32: SecretBytes], current: UInt32) throws(RecoveryKeyError) {
        guard seeds[current] != nil else { throw .problem("the current version \(current) has no key") }
        guard seeds.values.allSatisfy({ $0.count == OPRF.seedByteCount }) else {
            throw .problem("a recovery key seed is \(OPRF.seedByteCount) bytes")
        }
        self.seeds = seeds
        self.current = current
    }

    /// Parses the text form; every mistake is a sentence naming the line.
    public init(parsing text: String) throws(RecoveryKeyError) {
        var seeds: [UInt32: SecretBytes] = [:]
        var current: UInt32?
        var sawHeader = false
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
            guard !words.isEmpty else { continue }
            let place = "line \(number + 1)"
            if !sawHeader {
                guard words.joined(separator: " ") == Self.header else {
                    throw .problem("\(place): the file must start with \"\(Self.header)\"")
                }
                sawHeader = true
                continue
            }
            switch (words.first, words.count) {
            case ("key", 3):
                guard let version = UInt32(words[1]), version > 0 else { throw .problem("\(place): a key version is 1 or more") }
                guard seeds[version] == nil else { throw .problem("\(place): version \(version) is given twice") }
                guard var bytes = try? Hex.decode(words[2]), bytes.count == OPRF.seedByteCount else {
                    throw .problem("\(place): a key is \(OPRF.seedByteCount * 2) hex digits")
                }
                seeds[version] = SecretBytes(copying: bytes)
                SecretBytes.wipe(&bytes)
            case ("current", 2):
                guard let version = UInt32(words[1]) else { throw .problem("\(place): current names a key version") }
                current = version
            default:
                throw .problem("\(place): expected \"key VERSION HEX\" or \"current VERSION\"")
            }
        }
        guard sawHeader else { throw .problem("the recovery key file is empty") }
        guard let current else { throw .problem("no \"current VERSION\" line") }
        try self.init(seeds: seeds, current: current)
    }

    /// The key versions held, ascending.
    public var versions: [UInt32] { seeds.keys.sorted() }

    /// Whether a seed of `version` is held.
    public func has(version: UInt32) -> Bool { seeds[version] != nil }

    /// The account's OPRF key of `version`: RFC 9497 DeriveKeyPair(seed, info) with
    /// `info = "cloak.v1.recovery.oprf-key\0" ‖ LE32(version) ‖ account`, so an answer for one
    /// account says nothing about another's passphrase.
    func key(for account: AccountID, version: UInt32) throws(RecoveryKeyError) -> OPRF.PrivateKey {
        guard let seed = seeds[version] else { throw .problem("no recovery key of version \(version)") }
        do {
            return try OPRF.PrivateKey(seed: seed, info: RecoveryPassphrase.keyInfo(account: account, keyVersion: version))
        } catch { throw .problem("the recovery key of version \(version) cannot be used") }
    }

    /// The salt of the stand-in enrollment an outsider is shown for an account without a
    /// passphrase (or no account at all, PROTOCOL.md §25): BLAKE2b-128 keyed with the current
    /// seed over the account, so the same account always shows the same salt and nobody without
    /// the seed can tell it from a real one.
    func decoySalt(for account: AccountID) -> [UInt8] {
        guard let seed = seeds[current] else { return [UInt8](repeating: 0, count: PasswordKDFParameters.saltByteCount) }
        return BLAKE2b.hash(
            Array("cloak.v1.recovery.decoy-salt\0".utf8) + current.littleEndianBytes + account.bytes, key: seed,
            outputByteCount: PasswordKDFParameters.saltByteCount)
    }

    /// Only the versions, never a seed.
    public var description: String { "RecoveryKeySet(versions \(versions), current \(current))" }

    /// Same versions, current version and seeds (constant-time per seed).
    public static func == (lhs: RecoveryKeySet, rhs: RecoveryKeySet) -> Bool {
        lhs.current == rhs.current && lhs.seeds.keys.sorted() == rhs.seeds.keys.sorted()
            && lhs.seeds.allSatisfy { rhs.seeds[$0.key] == $0.value }
    }
}

/// Why a recovery key set was refused: a sentence for the operator, never a key.
public enum RecoveryKeyError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What is wrong.
    case problem(String)

    /// The sentence.
    public var description: String {
        switch self {
        case .problem(let why): "The recovery key file is not usable: \(why)."
        }
    }
}
