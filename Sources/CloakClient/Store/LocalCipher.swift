@_spi(Randomness) import CloakCrypto

/// Encrypts what the client keeps at rest (conversation states, pending operations, epoch
/// keys) under the device's local storage key, so the store file holds no plaintext message,
/// title, reaction or key (`LocalStoreCanaryTests` greps the file).
///
/// Each blob is `nonce ‖ XChaCha20-Poly1305(plaintext, AD: "cloak.local.v1\0" ‖ context)`, the
/// context naming the table and row, so a blob moved to another row does not open.
struct LocalCipher: Sendable {
    let key: SymmetricKey
    let random: any RandomSource

    static let domain: [UInt8] = Array("cloak.local.v1".utf8) + [0]

    func seal(_ plaintext: [UInt8], context: [UInt8]) -> [UInt8] {
        let box = XChaCha20Poly1305.seal(plaintext, key: key, associatedData: Self.domain + context, using: random)
        return box.nonce + box.ciphertext
    }

    func open(_ blob: [UInt8], context: [UInt8]) throws(ClientError) -> [UInt8] {
        guard blob.count >= 24 + 16 else { throw .storage("local blob too short") }
        let box = XChaCha20Poly1305.SealedBox(nonce: Array(blob[0..<24]), ciphertext: Array(blob[24...]))
        do {
            return try XChaCha20Poly1305.open(box, key: key, associatedData: Self.domain + context)
        } catch {
            throw .storage("local blob does not open with the storage key")
        }
    }
}
