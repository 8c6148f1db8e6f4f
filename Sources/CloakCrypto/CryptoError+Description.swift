extension CryptoError: CustomStringConvertible {
    /// A sentence naming the failed check; never key material.
    public var description: String {
        switch self {
        case .sodiumUnavailable: "libsodium could not start (no usable source of randomness)"
        case .invalidKeyLength(let expected, let actual): "a key has \(actual) bytes where \(expected) are needed"
        case .invalidNonceLength(let expected, let actual): "a nonce has \(actual) bytes where \(expected) are needed"
        case .invalidSeedLength(let expected, let actual): "a seed has \(actual) bytes where \(expected) are needed"
        case .invalidSaltLength(let expected, let actual): "a salt has \(actual) bytes where \(expected) are needed"
        case .invalidHashLength(let length): "a hash of \(length) bytes was asked for (BLAKE2b gives 16 to 64)"
        case .ciphertextTooShort(let minimum, let actual):
            "a ciphertext has \(actual) bytes, fewer than the \(minimum) it needs"
        case .authenticationFailed: "a ciphertext does not authenticate: it was altered, or the key is wrong"
        case .commitmentMismatch: "a ciphertext was not made under the key it claims (key commitment)"
        case .invalidSignature: "a signature does not verify"
        case .invalidPublicKey: "a public key is not valid"
        case .lowOrderPublicKey: "a public key has low order (it would give an all-zero shared secret)"
        case .sealedBoxOpenFailed: "a sealed box does not open with this device's key"
        case .invalidPadding: "padding is malformed"
        case .paddingTooLarge(let requested, let maximum): "\(requested) bytes of padding were asked for; at most \(maximum)"
        case .passwordParametersBelowFloor: "the passphrase hashing parameters are below Cloak's floors (a downgrade)"
        case .passwordParametersAboveCeiling: "the passphrase hashing parameters ask for more work than Cloak will do"
        case .unsupportedPasswordAlgorithm(let id): "passphrase hashing algorithm \(id) is not supported"
        case .passwordHashingFailed: "the passphrase could not be hashed (not enough memory for Argon2id)"
        case .streamChunkRejected: "a chunk of an encrypted stream was altered, reordered or repeated"
        case .streamTruncated: "an encrypted stream ends without its final chunk (it was truncated)"
        case .streamAlreadyFinished: "an encrypted stream was used after its final chunk"
        case .invalidStreamHeader: "an encrypted stream's header has the wrong length"
        case .malformedEncoding(let what): "malformed encoding: \(what)"
        case .invalidElementLength(let expected, let actual):
            "a group element has \(actual) bytes where \(expected) are needed"
        case .invalidElementEncoding: "a group element is not a canonical ristretto255 encoding"
        case .identityElement: "a group element is the identity, which the recovery exchange refuses"
        case .inputTooLong(let maximum, let actual): "an input of \(actual) bytes is longer than the \(maximum) allowed"
        case .invalidDomainSeparationTagLength(let length):
            "a domain separation tag of \(length) bytes was given (1 to 255 are allowed)"
        case .invalidExpandLength(let length): "\(length) bytes were asked of a hash expansion that cannot give them"
        case .zeroScalar: "a scalar that must not be zero was zero (the random source or the key derivation failed)"
        case .hashingFailed: "SHA-512 reported a failure"
        }
    }
}
