import CloakCrypto
import CloakProtocol
import Foundation

/// What a runner keeps while it runs one scenario: every key, account, chain and record it
/// built, all derived from the run salt and the scenario name (README "Directives").
struct ScenarioModel {
    struct Keys {
        let signing: Ed25519PrivateKey
        let agreement: X25519PrivateKey
        var id: DeviceID { DeviceID(signingKey: signing.publicKey) }
    }

    struct Account {
        let name: String
        var log: DeviceLog
        /// (conversation, author) → the last change set built: seq and hash.
        var chains: [ChainPosition: (seq: UInt64, hash: ChangeSetHash)] = [:]
    }

    struct ChainPosition: Hashable {
        let conversation: ConversationID
        let author: DeviceID
    }

    /// A record built by a directive: its bytes, its hash, and (for change sets) its chain head.
    struct Record {
        let bytes: [UInt8]
        let hash: [UInt8]
        var head: ChainHead?
    }

    let salt: [UInt8]
    let scenario: String
    var accounts: [String: Account] = [:]
    var records: [String: Record] = [:]
    var variables: [String: JSONValue] = [:]
    private var keyCache: [String: Keys] = [:]

    init(salt: [UInt8], scenario: String) {
        self.salt = salt
        self.scenario = scenario
    }

    /// `BLAKE2b-256("cloak.v1.conformance\0" ‖ salt ‖ scenario ‖ 0x00 ‖ label)`.
    func derive(_ label: String) -> [UInt8] {
        let input = Array("cloak.v1.conformance".utf8) + [0] + salt + Array(scenario.utf8) + [0] + Array(label.utf8)
        return BLAKE2b.hash(input, outputByteCount: 32)
    }

    /// `count` bytes: `derive(label)` repeated (bodies only need to be deterministic; they are
    /// encrypted anyway, and megabyte bodies must not cost a hash per 32 bytes).
    func derived(_ label: String, count: Int) -> [UInt8] {
        let block = derive(label)
        return (0..<count).map { block[$0 % block.count] }
    }

    mutating func keys(_ name: String) throws -> Keys {
        if let known = keyCache[name] { return known }
        let keys = Keys(
            signing: try Ed25519PrivateKey(seed: SecretBytes(copying: derive("key/\(name)/ed25519"))),
            agreement: try X25519PrivateKey(secret: SecretBytes(copying: derive("key/\(name)/x25519"))))
        keyCache[name] = keys
        return keys
    }

    func account(_ name: String) throws -> Account {
        guard let account = accounts[name] else { throw ConformanceFailure("account \(name) has no genesis yet") }
        return account
    }

    func conversation(_ name: String) -> ConversationID {
        name == "library" ? .library : ConversationID(unchecked: Array(derive("conversation/\(name)").prefix(16)))
    }

    func epochKey(_ account: String, _ epoch: UInt64) throws -> SymmetricKey {
        try SymmetricKey(bytes: derive("account/\(account)/epoch/\(epoch)"))
    }

    func record(_ name: String) throws -> Record {
        guard let record = records[name] else { throw ConformanceFailure("no record named \(name)") }
        return record
    }
}
