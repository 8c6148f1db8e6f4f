public import CloakCrypto
public import CloakProtocol

/// Checks the signatures of a batch of received change sets for admission, which consumes the
/// verdicts in order. Ed25519 verification is most of the cost of opening a change set and each
/// one is independent, so an implementation may verify ahead of admission on other cores
/// (`ThreadedSignatureVerifier`, what apps get); the core itself never starts a thread, and the
/// simulator injects ``InlineSignatureVerifier`` so a run stays on one thread. A verdict does not
/// depend on who computed it.
///
/// ```swift
/// let batch = verifier.begin(items)          // nil items: left to admission
/// if batch.isValid(0) { … }
/// batch.finish()
/// ```
@_spi(Simulation)
public protocol SignatureVerifier: Sendable {
    /// Starts verifying `items`; `nil` items (an author the log does not list) are invalid.
    func begin(_ items: [SignatureCheck?]) -> any SignatureVerification
}

/// One change set and the key its signature must verify with.
@_spi(Simulation)
public struct SignatureCheck: Sendable {
    /// The change set.
    public let changeSet: ChangeSet
    /// Its author's key from the verified device log.
    public let key: Ed25519PublicKey

    /// Creates a check.
    public init(changeSet: ChangeSet, key: Ed25519PublicKey) {
        self.changeSet = changeSet
        self.key = key
    }

    /// Whether the signature verifies.
    public func verify() -> Bool {
        do {
            try changeSet.verifySignature(key)
            return true
        } catch { return false }
    }
}

/// The verdicts of one batch, read in order by admission.
@_spi(Simulation)
public protocol SignatureVerification: AnyObject {
    /// Whether item `index` carries a valid signature by its key (false for `nil` items).
    func isValid(_ index: Int) -> Bool
    /// No more verdicts are needed: helpers take nothing more.
    func finish()
}

/// Verifies each signature when admission asks for it, on the calling thread: deterministic
/// and free of threads (the simulator's choice, and the threaded verifier's fallback for
/// small batches).
@_spi(Simulation)
public struct InlineSignatureVerifier: SignatureVerifier {
    /// Creates the verifier.
    public init() {}

    /// A batch verified on demand.
    public func begin(_ items: [SignatureCheck?]) -> any SignatureVerification {
        InlineVerification(items)
    }
}

final class InlineVerification: SignatureVerification {
    private let items: [SignatureCheck?]

    init(_ items: [SignatureCheck?]) { self.items = items }

    func isValid(_ index: Int) -> Bool { items[index]?.verify() ?? false }
    func finish() {}
}

/// A change set's hash with its signature: the hash covers only the signed bytes, so two copies
/// with one hash may carry different signatures, and only the one checked counts.
struct VerifiedSignature: Equatable, Sendable {
    let hash: ChangeSetHash
    let signature: [UInt8]

    init(_ changeSet: ChangeSet) {
        hash = changeSet.hash
        signature = changeSet.signature
    }
}
