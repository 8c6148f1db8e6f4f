import CSodium

/// The ristretto255 group operations the OPRF needs (RFC 9496), over libsodium 1.0.18's
/// `crypto_core_ristretto255_*` and `crypto_scalarmult_ristretto255`. Every return code is
/// checked, and every element or scalar that depends on a secret stays in ``SecretBytes``:
/// even HashToGroup(input) is secret, because it lets anyone holding it test input guesses.
///
/// Scalars here are always reduced (below the group order L): libsodium's scalar
/// multiplication clears only bit 255 and never reduces, so an unreduced scalar would silently
/// multiply by a different value.
enum Ristretto255 {
    /// Encoded element length.
    static let elementByteCount = 32
    /// Encoded scalar length.
    static let scalarByteCount = 32
    /// Bytes hashed into one element or reduced into one scalar (twice the scalar length, so
    /// the reduction bias is below 2^-250).
    static let uniformByteCount = 64
    /// How often a zero scalar from the random source is tolerated before giving up. A working
    /// source produces zero with probability about 2^-252 per draw.
    static let zeroScalarRetriesMax = 8

    /// Throws unless `bytes` is the canonical encoding of an element other than the identity.
    ///
    /// Three checks, because libsodium's one is not enough: `is_valid_point` accepts the
    /// identity (all zeros), and 1.0.18 masks bit 255 before decoding, so `G` with bit 255 set
    /// (or the identity with it set, which then also escapes a zero check) would be accepted
    /// as a second encoding of the same element. `OPRFTests` pins both behaviours.
    static func validate(_ bytes: [UInt8]) throws(CryptoError) {
        guard bytes.count == elementByteCount else {
            throw .invalidElementLength(expected: elementByteCount, actual: bytes.count)
        }
        try Sodium.ensure()
        guard bytes[elementByteCount - 1] & 0x80 == 0, crypto_core_ristretto255_is_valid_point(bytes) == 1 else {
            throw .invalidElementEncoding
        }
        guard sodium_is_zero(bytes, elementByteCount) == 0 else { throw .identityElement }
    }

    /// The element for 64 uniform bytes: RFC 9496 §4.3.4's one-way map, which is what
    /// `hash_to_ristretto255` applies after expand_message (RFC 9380 Appendix B).
    static func element(fromUniform uniform: SecretBytes) throws(CryptoError) -> SecretBytes {
        precondition(uniform.count == uniformByteCount, "ristretto255 map takes 64 bytes")
        let element = try apply(
            uniform, byteCount: elementByteCount, failure: .invalidElementEncoding, crypto_core_ristretto255_from_hash)
        guard !isZero(element) else { throw .identityElement }
        return element
    }

    /// `scalar · element`. libsodium returns -1 when the element does not decode or the
    /// product is the identity; both are refused, so no identity ever leaves this function.
    static func multiply(_ scalar: SecretBytes, _ element: SecretBytes) throws(CryptoError) -> SecretBytes {
        precondition(scalar.count == scalarByteCount && element.count == elementByteCount, "32-byte operands")
        var status: Int32 = 0
        let product = SecretBytes(count: elementByteCount) { out in
            scalar.withUnsafeBytes { n in
                element.withUnsafeBytes { p in
                    status = crypto_scalarmult_ristretto255(bytePointer(out), bytePointer(n), bytePointer(p))
                }
            }
        }
        guard status == 0 else { throw .identityElement }
        return product
    }

    /// 64 little-endian bytes reduced modulo L.
    static func reduce(_ wide: SecretBytes) -> SecretBytes {
        precondition(wide.count == uniformByteCount, "scalar reduction takes 64 bytes")
        return SecretBytes(count: scalarByteCount) { out in
            wide.withUnsafeBytes { w in crypto_core_ristretto255_scalar_reduce(bytePointer(out), bytePointer(w)) }
        }
    }

    /// The inverse modulo L; zero has none.
    static func invert(_ scalar: SecretBytes) throws(CryptoError) -> SecretBytes {
        precondition(scalar.count == scalarByteCount, "32-byte scalar")
        return try apply(
            scalar, byteCount: scalarByteCount, failure: .zeroScalar, crypto_core_ristretto255_scalar_invert)
    }

    /// True when every byte is zero (the zero scalar, or the identity's encoding), in
    /// constant time (`sodium_is_zero`).
    static func isZero(_ bytes: SecretBytes) -> Bool {
        bytes.withUnsafeBytes { sodium_is_zero(bytePointer($0), $0.count) == 1 }
    }

    /// A uniform non-zero scalar: 64 bytes from `source` reduced modulo L (RFC 9497 §4.7),
    /// drawn again in the negligible case that the result is zero. Reading all randomness
    /// through the injected source is what lets tests replay the RFC's blinds.
    static func randomScalar(using source: any RandomSource) throws(CryptoError) -> SecretBytes {
        for _ in 0..<zeroScalarRetriesMax {
            let scalar = reduce(SecretBytes.random(count: uniformByteCount, using: source))
            if !isZero(scalar) { return scalar }
        }
        throw .zeroScalar
    }

    /// Runs a one-input libsodium operation into fresh zeroing storage, turning a non-zero
    /// return code into `failure`.
    private static func apply(
        _ input: SecretBytes, byteCount: Int, failure: CryptoError,
        _ operation: (UnsafeMutablePointer<UInt8>, UnsafePointer<UInt8>) -> Int32
    ) throws(CryptoError) -> SecretBytes {
        var status: Int32 = 0
        let output = SecretBytes(count: byteCount) { out in
            input.withUnsafeBytes { i in status = operation(bytePointer(out), bytePointer(i)) }
        }
        guard status == 0 else { throw failure }
        return output
    }
}

@inline(__always)
private func bytePointer(_ buffer: UnsafeRawBufferPointer) -> UnsafePointer<UInt8> {
    buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
}

@inline(__always)
private func bytePointer(_ buffer: UnsafeMutableRawBufferPointer) -> UnsafeMutablePointer<UInt8> {
    buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
}
