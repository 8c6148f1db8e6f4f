import CSodium

/// RFC 9497's oblivious pseudorandom function, OPRF mode (0x00), suite ristretto255-SHA512:
/// the client learns `F(k, input)` for the server's key `k` without the server learning the
/// input or the output, and without the client learning `k`. Cloak uses it to harden recovery
/// passphrases: every guess needs a fresh, counted answer from the server (PROTOCOL.md §22).
///
/// ```swift
/// // Client: blind the input and send the blinded element.
/// let blind = try OPRF.blind(passphraseInput)
/// send(blind.blindedElement.bytes)
///
/// // Server: validate what arrived, evaluate with its key, answer.
/// let key = try OPRF.PrivateKey(seed: seed, info: keyInfo)
/// let evaluated = try key.blindEvaluate(OPRF.Element(validating: receivedBytes))
///
/// // Client: validate the answer and unblind it into the 64-byte output.
/// let output = try blind.finalize(evaluatedElement: OPRF.Element(validating: answerBytes))
/// ```
///
/// Elements are 32-byte canonical ristretto255 encodings. ``Element/init(validating:)`` is the
/// only public way to make one, and it refuses wrong lengths, non-canonical encodings and the
/// identity, so every element these functions receive has passed the RFC's checks. Secrets
/// (the key, the blind, the input, the unblinded element, the output) live in
/// ``SecretBytes`` and never appear in a description. The only randomness is the blind, drawn
/// from the operating system; only the `Randomness` SPI (tests, vectors) can inject a source,
/// which is how a test reproduces the RFC's blinds (CloakTesting's `FixedBytesRandom`).
///
/// Byte layouts (RFC 9497 §3.1, §3.2.1, §3.3.1):
///
///     contextString = "OPRFV1-" ‖ 0x00 ‖ "-ristretto255-SHA512"
///     HashToGroup(x) = ristretto255_map(expand_message_xmd(x, "HashToGroup-" ‖ contextString, 64))
///     skS = HashToScalar(seed ‖ I2OSP(|info|, 2) ‖ info ‖ counter, "DeriveKeyPair" ‖ contextString)
///     output = SHA-512(I2OSP(|input|, 2) ‖ input ‖ I2OSP(32, 2) ‖ r⁻¹·Z ‖ "Finalize")
///
/// `OPRFTests` checks RFC 9497 Appendix A.1.1 and RFC 9380 Appendix K.3 through this API.
public enum OPRF {
    /// The RFC 9497 suite identifier.
    public static let suiteIdentifier = "ristretto255-SHA512"
    /// The protocol mode: 0x00 is the plain OPRF (no verifiability proof). It is inside every
    /// domain separation tag, so changing it changes every output.
    public static let mode: UInt8 = 0x00
    /// `"OPRFV1-" ‖ mode ‖ "-" ‖ suiteIdentifier` (28 bytes).
    public static let contextString: [UInt8] = Array("OPRFV1-".utf8) + [mode] + Array("-\(suiteIdentifier)".utf8)
    /// Encoded element length (`Ne`).
    public static let elementByteCount = Ristretto255.elementByteCount
    /// Key seed length (`Ns`).
    public static let seedByteCount = Ristretto255.scalarByteCount
    /// Output length (`Nh`, SHA-512).
    public static let outputByteCount = SHA512Hasher.byteCount
    /// Longest private input or key info: both are prefixed with a 2-byte length.
    public static let inputByteCountMax = Int(UInt16.max)

    static let hashToGroupDST = Array("HashToGroup-".utf8) + contextString
    // No hyphen after "DeriveKeyPair": RFC 9497 §3.2.1 spells it that way.
    static let deriveKeyPairDST = Array("DeriveKeyPair".utf8) + contextString
    static let finalizeLabel = Array("Finalize".utf8)

    /// RFC 9497 `Blind`: a fresh blind `r` and `r · HashToGroup(input)`. Throws
    /// ``CryptoError/inputTooLong(maximum:actual:)`` for inputs over 65,535 bytes and
    /// ``CryptoError/identityElement`` if the input hashes to the identity (RFC 9497's
    /// InvalidInputError; probability about 2^-252).
    ///
    /// The input is copied into the returned ``Blind`` (zeroing storage), so ``Blind/finalize(evaluatedElement:)``
    /// cannot be called with a different input; the caller should wipe its own copy.
    public static func blind(_ input: [UInt8]) throws(CryptoError) -> Blind {
        try blind(input, using: SystemRandom())
    }

    /// ``blind(_:)`` with the blind drawn from `random` (SPI: the RFC's vectors inject theirs).
    @_spi(Randomness)
    public static func blind(_ input: [UInt8], using random: any RandomSource) throws(CryptoError) -> Blind {
        let secretInput = try checkedInput(input)
        let scalar = try Ristretto255.randomScalar(using: random)
        let blinded = try Ristretto255.multiply(scalar, hashToGroup(secretInput))
        return Blind(scalar: scalar, input: secretInput, blindedElement: Element(unchecked: blinded.copyBytes()))
    }

    static func checkedInput(_ input: [UInt8]) throws(CryptoError) -> SecretBytes {
        guard input.count <= inputByteCountMax else {
            throw .inputTooLong(maximum: inputByteCountMax, actual: input.count)
        }
        return SecretBytes(copying: input)
    }

    /// HashToGroup: expand_message_xmd to 64 bytes, then the ristretto255 one-way map. Refuses
    /// the identity, as `Blind` and `Evaluate` must.
    static func hashToGroup(_ input: SecretBytes) throws(CryptoError) -> SecretBytes {
        try Ristretto255.element(
            fromUniform: ExpandMessageXMD.expand(input, dst: hashToGroupDST, byteCount: Ristretto255.uniformByteCount))
    }

    /// HashToScalar under `dst`: expand_message_xmd to 64 bytes read little-endian, reduced
    /// modulo the group order.
    static func hashToScalar(_ message: SecretBytes, dst: [UInt8]) throws(CryptoError) -> SecretBytes {
        try Ristretto255.reduce(ExpandMessageXMD.expand(message, dst: dst, byteCount: Ristretto255.uniformByteCount))
    }

    /// The Finalize/Evaluate hash: `SHA-512(I2OSP(|input|, 2) ‖ input ‖ I2OSP(32, 2) ‖ element ‖ "Finalize")`.
    static func finalizeHash(input: SecretBytes, element: SecretBytes) throws(CryptoError) -> SecretBytes {
        var hasher = try SHA512Hasher()
        try hasher.update(UInt16(input.count).bigEndianBytes)
        try hasher.update(input)
        try hasher.update(UInt16(element.count).bigEndianBytes)
        try hasher.update(element)
        try hasher.update(finalizeLabel)
        return try hasher.finalizeSecret()
    }
}

extension OPRF {
    /// A validated ristretto255 element as it travels on the wire: a blinded element (client to
    /// server) or an evaluated element (server to client). Elements are public values.
    ///
    /// ```swift
    /// let blinded = try OPRF.Element(validating: Array(request.blindedElement))  // throws on bad bytes
    /// ```
    public struct Element: Sendable, Hashable, CustomStringConvertible {
        /// The 32-byte canonical encoding.
        public let bytes: [UInt8]

        /// Accepts `bytes` only if they are exactly 32 bytes, the canonical encoding of a
        /// ristretto255 element (bit 255 clear, libsodium's decoding succeeds) and not the
        /// identity. Throws ``CryptoError/invalidElementLength(expected:actual:)``,
        /// ``CryptoError/invalidElementEncoding`` or ``CryptoError/identityElement``.
        public init(validating bytes: [UInt8]) throws(CryptoError) {
            try Ristretto255.validate(bytes)
            self.bytes = bytes
        }

        // For elements this module computed itself: scalar multiplication already refused the
        // identity, and libsodium's encoder only produces canonical encodings.
        init(unchecked bytes: [UInt8]) {
            self.bytes = bytes
        }

        /// Constant-time comparison of the encodings (`sodium_memcmp`).
        public static func == (lhs: Element, rhs: Element) -> Bool {
            ConstantTime.equals(lhs.bytes, rhs.bytes)
        }

        /// Hashes the encoding.
        public func hash(into hasher: inout Hasher) {
            hasher.combine(bytes)
        }

        /// A short hex prefix, enough to tell elements apart in logs.
        public var description: String { "OPRF.Element(\(Hex.encode(bytes.prefix(6)))…)" }
    }
}
