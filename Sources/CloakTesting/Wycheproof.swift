import Foundation

/// The subset of the Wycheproof JSON schema (C2SP/wycheproof `testvectors_v1`) that Cloak's
/// tests read: groups of tests with a `result` of `valid`, `invalid` or `acceptable`.
///
/// ```swift
/// let file = try WycheproofFile.load("xchacha20_poly1305_test.json")
/// for group in file.testGroups { for test in group.tests { … } }
/// ```
public struct WycheproofFile: Decodable, Sendable {
    /// One test group. Fields not used by an algorithm are nil.
    public struct Group: Decodable, Sendable {
        /// Group-level key size (AEAD), in bits.
        public let keySize: Int?
        /// Group-level nonce size (AEAD), in bits.
        public let ivSize: Int?
        /// Group-level public key (Ed25519).
        public let publicKey: PublicKey?
        /// The tests.
        public let tests: [Test]
    }

    /// An Ed25519 group's public key.
    public struct PublicKey: Decodable, Sendable {
        /// Raw public key, hex.
        public let pk: String
    }

    /// One test case; byte fields are hex.
    public struct Test: Decodable, Sendable {
        /// Test case id.
        public let tcId: Int
        /// What the case exercises.
        public let comment: String
        /// Wycheproof flags (e.g. `LowOrderPublic`).
        public let flags: [String]
        /// `valid`, `invalid` or `acceptable`.
        public let result: String
        /// Key (AEAD).
        public let key: String?
        /// Nonce (AEAD).
        public let iv: String?
        /// Associated data (AEAD).
        public let aad: String?
        /// Message.
        public let msg: String?
        /// Ciphertext without tag (AEAD).
        public let ct: String?
        /// Tag (AEAD).
        public let tag: String?
        /// Signature (Ed25519).
        public let sig: String?
        /// Private scalar (X25519).
        public let `private`: String?
        /// Peer public key (X25519).
        public let `public`: String?
        /// Expected shared secret (X25519).
        public let shared: String?
    }

    /// Algorithm name.
    public let algorithm: String
    /// The declared number of tests.
    public let numberOfTests: Int
    /// The groups.
    public let testGroups: [Group]

    /// Loads `TestData/wycheproof/<name>`.
    public static func load(_ name: String) throws -> WycheproofFile {
        try JSONDecoder().decode(WycheproofFile.self, from: TestData.load("wycheproof/" + name))
    }
}
