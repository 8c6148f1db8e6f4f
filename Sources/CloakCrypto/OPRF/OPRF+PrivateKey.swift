extension OPRF {
    /// The server's OPRF key, derived from a 32-byte seed and a public info string with RFC 9497
    /// `DeriveKeyPair`, so a server stores seeds and never parses a scalar from disk.
    ///
    /// ```swift
    /// let key = try OPRF.PrivateKey(seed: masterSeed, info: perAccountInfo)
    /// let evaluated = try key.blindEvaluate(OPRF.Element(validating: blindedBytes))
    /// ```
    ///
    /// `info` separates keys derived from one seed (Cloak derives one key per account and key
    /// version; PROTOCOL.md §22). Mode 0x00 needs no public key, so none is computed.
    public struct PrivateKey: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
        /// RFC 9497's serialized `skS` (32 bytes, little-endian, reduced, non-zero), exposed for
        /// known-answer tests. Persist the seed instead.
        public let scalar: SecretBytes

        /// RFC 9497 `DeriveKeyPair(seed, info)`: `skS = HashToScalar(seed ‖ I2OSP(|info|, 2) ‖ info
        /// ‖ counter)` under the DeriveKeyPair tag, for the first counter in 0...255 that gives a
        /// non-zero scalar. Throws for a seed that is not 32 bytes, info over 65,535 bytes, and
        /// (with probability about 2^-2000) ``CryptoError/zeroScalar`` when every counter fails.
        public init(seed: SecretBytes, info: [UInt8]) throws(CryptoError) {
            guard seed.count == OPRF.seedByteCount else {
                throw .invalidSeedLength(expected: OPRF.seedByteCount, actual: seed.count)
            }
            guard info.count <= OPRF.inputByteCountMax else {
                throw .inputTooLong(maximum: OPRF.inputByteCountMax, actual: info.count)
            }
            let suffix = UInt16(info.count).bigEndianBytes + info
            for counter in UInt8.min...UInt8.max {
                let message = SecretBytes(count: seed.count + suffix.count + 1) { out in
                    seed.withUnsafeBytes { s in out.copyMemory(from: s) }
                    for (i, byte) in (suffix + [counter]).enumerated() { out[seed.count + i] = byte }
                }
                let scalar = try OPRF.hashToScalar(message, dst: OPRF.deriveKeyPairDST)
                if !Ristretto255.isZero(scalar) {
                    self.scalar = scalar
                    return
                }
            }
            throw .zeroScalar
        }

        /// RFC 9497 `BlindEvaluate`: `Z = skS · B`. The element type guarantees `B` was validated;
        /// the product cannot be the identity for a non-zero key, and libsodium's -1 is refused
        /// regardless.
        public func blindEvaluate(_ blindedElement: Element) throws(CryptoError) -> Element {
            let evaluated = try Ristretto255.multiply(scalar, SecretBytes(copying: blindedElement.bytes))
            return Element(unchecked: evaluated.copyBytes())
        }

        /// RFC 9497 `Evaluate`: the same 64-byte output as the oblivious exchange, computed
        /// directly by whoever holds both the key and the input. Cloak's tests use it to check
        /// the exchange; a server holding the key and a database copy could use it to guess
        /// offline, which is why the key is kept apart from the database.
        public func evaluate(_ input: [UInt8]) throws(CryptoError) -> SecretBytes {
            let secretInput = try OPRF.checkedInput(input)
            let element = try Ristretto255.multiply(scalar, OPRF.hashToGroup(secretInput))
            return try OPRF.finalizeHash(input: secretInput, element: element)
        }

        /// Never shows the key.
        public var description: String { "OPRF.PrivateKey(redacted)" }
        /// Never shows the key.
        public var debugDescription: String { description }
        /// Reflection shows no children.
        public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
    }
}
