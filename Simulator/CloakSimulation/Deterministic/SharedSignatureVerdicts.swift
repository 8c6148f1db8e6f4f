@_spi(Simulation) import CloakClient
import CloakCrypto
import CloakProtocol
import Synchronization

/// The Ed25519 verdicts of one simulated run, shared by its devices.
///
/// Every device of an account receives the same change sets, byte for byte, and verifying
/// their signatures again on each of them was a fifth of a release run's time. A verdict is a
/// pure function of (key, signed message, signature), and the change-set hash is BLAKE2b-256 of
/// exactly the signed message, so a verdict computed once by libsodium stands for every device
/// that meets the same triple: a copy a hostile server changed in any signed byte or in the
/// signature is a new triple and is verified afresh. Apps verify every change set themselves
/// (``ThreadedSignatureVerifier``); the server's and the log's checks are not shared.
///
/// ```swift
/// let verdicts = SharedSignatureVerdicts()
/// let engine = try ClientEngine(…, verifier: SharedVerdictVerifier(verdicts), …)
/// ```
final class SharedSignatureVerdicts: Sendable {
    private struct Triple: Hashable {
        let key: Ed25519PublicKey
        let hash: ChangeSetHash
        let signature: [UInt8]
    }

    /// Grows with the run's distinct change sets (tens of thousands at most: a few MiB).
    private let verdicts = Mutex<[Triple: Bool]>([:])

    /// Whether `check`'s signature verifies, computed once per distinct triple.
    func verdict(_ check: SignatureCheck) -> Bool {
        let triple = Triple(key: check.key, hash: check.changeSet.hash, signature: check.changeSet.signature)
        if let known = verdicts.withLock({ $0[triple] }) { return known }
        let valid = check.verify()
        verdicts.withLock { $0[triple] = valid }
        return valid
    }
}

/// Verifies on the calling thread, as ``InlineSignatureVerifier`` does, consulting the run's
/// shared verdicts first.
struct SharedVerdictVerifier: SignatureVerifier {
    let verdicts: SharedSignatureVerdicts

    init(_ verdicts: SharedSignatureVerdicts) { self.verdicts = verdicts }

    func begin(_ items: [SignatureCheck?]) -> any SignatureVerification {
        SharedVerdictVerification(items: items, verdicts: verdicts)
    }
}

private final class SharedVerdictVerification: SignatureVerification {
    let items: [SignatureCheck?]
    let verdicts: SharedSignatureVerdicts

    init(items: [SignatureCheck?], verdicts: SharedSignatureVerdicts) {
        self.items = items
        self.verdicts = verdicts
    }

    func isValid(_ index: Int) -> Bool { items[index].map(verdicts.verdict) ?? false }
    func finish() {}
}
