extension OPRF {
    /// The client's state between ``OPRF/blind(_:using:)`` and ``finalize(evaluatedElement:)``:
    /// the secret blind `r`, the input it blinded, and the blinded element to send.
    ///
    /// ```swift
    /// let blind = try OPRF.blind(input)                  // r is random; nobody can choose it
    /// let reply = try await server.evaluate(blind.blindedElement)
    /// let output = try blind.finalize(evaluatedElement: OPRF.Element(validating: reply))
    /// ```
    ///
    /// A blind belongs to one exchange: keep it in memory for the round trip, never persist it
    /// (its bytes are not reachable through the API), and let it go afterwards; its storage is
    /// wiped on release. The description shows only the public blinded element.
    public struct Blind: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
        let scalar: SecretBytes
        let input: SecretBytes
        /// `r · HashToGroup(input)`: the value sent to the server. It reveals nothing about the
        /// input, because `r` is uniform.
        public let blindedElement: Element

        init(scalar: SecretBytes, input: SecretBytes, blindedElement: Element) {
            self.scalar = scalar
            self.input = input
            self.blindedElement = blindedElement
        }

        /// RFC 9497 `Finalize`: unblinds the server's answer `Z` into `N = r⁻¹ · Z` and hashes
        /// it with the input into the 64-byte output. The element type guarantees `Z` was
        /// validated (canonical, not the identity); a zero blind or an identity product is
        /// refused with a typed error rather than hashed.
        public func finalize(evaluatedElement: Element) throws(CryptoError) -> SecretBytes {
            let unblinded = try Ristretto255.multiply(
                Ristretto255.invert(scalar), SecretBytes(copying: evaluatedElement.bytes))
            return try OPRF.finalizeHash(input: input, element: unblinded)
        }

        /// Only the blinded element, never the blind or the input.
        public var description: String { "OPRF.Blind(\(blindedElement), secret redacted)" }
        /// Only the blinded element, never the blind or the input.
        public var debugDescription: String { description }
        /// Reflection shows only the blinded element.
        public var customMirror: Mirror {
            Mirror(self, children: ["blindedElement": blindedElement], displayStyle: .struct)
        }
    }
}
