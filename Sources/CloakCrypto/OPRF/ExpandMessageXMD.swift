import CSodium

/// `expand_message_xmd` with SHA-512 (RFC 9380 §5.3.1): stretches a message into uniformly
/// random bytes bound to a domain separation tag. It is the first step of hashing to
/// ristretto255 and to scalars in the OPRF (``OPRF``).
///
/// ```swift
/// let dst = Array("QUUX-V01-CS02-with-expander-SHA512-256".utf8)
/// let uniform = try ExpandMessageXMD.sha512(Array("abc".utf8), dst: dst, byteCount: 32)
/// // 0da749f1… (RFC 9380 Appendix K.3)
/// ```
///
/// libsodium 1.0.18 has no hash-to-curve, so the construction is written here over
/// `crypto_hash_sha512_*` (each call's return code checked):
///
///     b0 = SHA-512(0^128 ‖ msg ‖ I2OSP(len, 2) ‖ 0x00 ‖ DST')     DST' = DST ‖ I2OSP(|DST|, 1)
///     b1 = SHA-512(b0 ‖ 0x01 ‖ DST')
///     bi = SHA-512((b0 ⊕ b(i-1)) ‖ I2OSP(i, 1) ‖ DST')            output = first len bytes of b1 ‖ b2 ‖ …
///
/// Tags longer than 255 bytes are refused rather than hashed down (RFC 9380 §5.3.3): every tag
/// Cloak uses is a short constant. The output is as secret as the message; the OPRF keeps it
/// in ``SecretBytes``.
public enum ExpandMessageXMD {
    /// SHA-512's input block size (`r_in_bytes`): the length of the zero prefix.
    static let blockByteCount = 128
    /// Longest accepted domain separation tag.
    public static let domainSeparationTagByteCountMax = 255
    /// Longest output: 255 SHA-512 blocks.
    public static let outputByteCountMax = 255 * SHA512Hasher.byteCount

    /// `byteCount` uniform bytes from `message` under the tag `dst`. Throws for an empty or
    /// over-long tag and for `byteCount` outside `1...outputByteCountMax`.
    public static func sha512(_ message: [UInt8], dst: [UInt8], byteCount: Int) throws(CryptoError) -> [UInt8] {
        try expand(SecretBytes(copying: message), dst: dst, byteCount: byteCount).copyBytes()
    }

    /// The same expansion, reading the message from and writing the result to zeroing storage.
    static func expand(_ message: SecretBytes, dst: [UInt8], byteCount: Int) throws(CryptoError) -> SecretBytes {
        guard (1...domainSeparationTagByteCountMax).contains(dst.count) else {
            throw .invalidDomainSeparationTagLength(dst.count)
        }
        guard (1...outputByteCountMax).contains(byteCount) else { throw .invalidExpandLength(byteCount) }
        let dstPrime = dst + [UInt8(dst.count)]
        var first = try SHA512Hasher()
        try first.update([UInt8](repeating: 0, count: blockByteCount))
        try first.update(message)
        try first.update(UInt16(byteCount).bigEndianBytes + [0])
        try first.update(dstPrime)
        var b0 = try first.finalize()
        var previous = [UInt8](repeating: 0, count: SHA512Hasher.byteCount)
        var uniform: [UInt8] = []
        defer {
            SecretBytes.wipe(&b0)
            SecretBytes.wipe(&previous)
            SecretBytes.wipe(&uniform)
        }
        uniform.reserveCapacity(byteCount + SHA512Hasher.byteCount)
        var index: UInt8 = 1
        while uniform.count < byteCount {
            // b1 hashes b0 itself; later blocks hash b0 ⊕ b(i-1). `previous` starts at zero,
            // so one XOR covers both cases.
            for i in 0..<previous.count { previous[i] ^= b0[i] }
            var block = try SHA512Hasher()
            try block.update(previous)
            try block.update([index] + dstPrime)
            SecretBytes.wipe(&previous)
            previous = try block.finalize()
            uniform += previous
            index &+= 1
        }
        return SecretBytes(copying: uniform.prefix(byteCount))
    }
}

/// Incremental SHA-512 through libsodium, with every return code checked. Not copyable: the
/// state, which depends on secret input, lives in one allocation that is wiped and freed when
/// the hasher ends.
struct SHA512Hasher: ~Copyable {
    /// Digest length (`Nh` in RFC 9497).
    static let byteCount = 64

    private let state: UnsafeMutablePointer<crypto_hash_sha512_state>

    /// Starts a hash.
    init() throws(CryptoError) {
        try Sodium.ensure()
        let state = UnsafeMutablePointer<crypto_hash_sha512_state>.allocate(capacity: 1)
        guard crypto_hash_sha512_init(state) == 0 else {
            state.deallocate()
            throw .hashingFailed
        }
        self.state = state
    }

    deinit {
        sodium_memzero(state, MemoryLayout<crypto_hash_sha512_state>.size)
        state.deallocate()
    }

    /// Absorbs `bytes`.
    mutating func update(_ bytes: [UInt8]) throws(CryptoError) {
        guard !bytes.isEmpty else { return }
        let status = bytes.withUnsafeBytes { absorb($0) }
        guard status == 0 else { throw .hashingFailed }
    }

    /// Absorbs secret bytes without copying them out of zeroing storage.
    mutating func update(_ secret: SecretBytes) throws(CryptoError) {
        guard secret.count > 0 else { return }
        let status = secret.withUnsafeBytes { absorb($0) }
        guard status == 0 else { throw .hashingFailed }
    }

    private func absorb(_ bytes: UnsafeRawBufferPointer) -> Int32 {
        crypto_hash_sha512_update(
            state, bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(bytes.count))
    }

    /// The digest as an array (for intermediate values the caller wipes).
    consuming func finalize() throws(CryptoError) -> [UInt8] {
        var status: Int32 = 0
        let statePointer = state
        let digest = [UInt8].filled(count: Self.byteCount) { out in
            status = crypto_hash_sha512_final(statePointer, out)
        }
        guard status == 0 else { throw .hashingFailed }
        return digest
    }

    /// The digest, written straight into zeroing storage.
    consuming func finalizeSecret() throws(CryptoError) -> SecretBytes {
        var status: Int32 = 0
        let statePointer = state
        let digest = SecretBytes(count: Self.byteCount) { out in
            status = crypto_hash_sha512_final(statePointer, out.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        guard status == 0 else { throw .hashingFailed }
        return digest
    }
}
