import CSodium

/// BLAKE2b (RFC 7693) through libsodium's `crypto_generichash`: unkeyed or keyed, 16 to 64
/// byte outputs, one-shot or incremental.
///
/// ```swift
/// let digest = BLAKE2b.hash(Array("abc".utf8), outputByteCount: 64)
/// var hasher = BLAKE2b.Hasher(outputByteCount: 32)
/// hasher.update(part1); hasher.update(part2)
/// let same = hasher.finalize()
/// ```
///
/// Cloak uses it for identifiers (DeviceID, change-set hash, device-log entry hash), for the
/// keyed subkey derivation (``KeyDerivation``) and for key commitment (``CommittedAEAD``).
public enum BLAKE2b {
    /// Smallest output length libsodium allows.
    public static let minimumOutputByteCount = 16
    /// Largest output length.
    public static let maximumOutputByteCount = 64
    /// Longest key.
    public static let maximumKeyByteCount = 64

    /// One-shot unkeyed hash. `outputByteCount` must be 16...64 (it is a programmer's constant,
    /// so an out-of-range value traps instead of throwing).
    public static func hash(_ message: [UInt8], outputByteCount: Int = 32) -> [UInt8] {
        var hasher = Hasher(outputByteCount: outputByteCount)
        hasher.update(message)
        return hasher.finalize()
    }

    /// One-shot keyed hash (a MAC / PRF). The key must be 16...64 bytes.
    public static func hash(_ message: [UInt8], key: SecretBytes, outputByteCount: Int = 32) -> [UInt8] {
        var hasher = Hasher(outputByteCount: outputByteCount, key: key)
        hasher.update(message)
        return hasher.finalize()
    }

    /// Incremental hashing. Not copyable: the state lives in one aligned allocation that is
    /// wiped and freed when the hasher ends, which matters for keyed hashing.
    public struct Hasher: ~Copyable {
        private let state: UnsafeMutableRawPointer
        private let outputByteCount: Int

        /// Starts an unkeyed or keyed hash. Output must be 16...64 bytes and a key at most 64
        /// bytes; these are constants of the caller, so a violation traps.
        public init(outputByteCount: Int = 32, key: SecretBytes? = nil) {
            precondition(
                (minimumOutputByteCount...maximumOutputByteCount).contains(outputByteCount),
                "BLAKE2b output length must be 16...64")
            precondition((key?.count ?? 0) <= maximumKeyByteCount, "BLAKE2b key must be at most 64 bytes")
            _ = Sodium.ready
            self.outputByteCount = outputByteCount
            state = UnsafeMutableRawPointer.allocate(byteCount: crypto_generichash_statebytes(), alignment: 64)
            let typed = OpaquePointer(state)
            if let key {
                key.withUnsafeBytes { k in
                    _ = crypto_generichash_init(
                        typed, k.baseAddress!.assumingMemoryBound(to: UInt8.self), k.count, outputByteCount)
                }
            } else {
                _ = crypto_generichash_init(typed, nil, 0, outputByteCount)
            }
        }

        deinit {
            sodium_memzero(state, crypto_generichash_statebytes())
            state.deallocate()
        }

        /// Absorbs `bytes`.
        public mutating func update(_ bytes: [UInt8]) {
            guard !bytes.isEmpty else { return }
            bytes.withUnsafeBufferPointer { b in
                _ = crypto_generichash_update(
                    OpaquePointer(state), b.baseAddress!, UInt64(b.count))
            }
        }

        /// Absorbs raw bytes.
        public mutating func update(_ bytes: UnsafeRawBufferPointer) {
            guard let base = bytes.baseAddress, bytes.count > 0 else { return }
            _ = crypto_generichash_update(
                OpaquePointer(state),
                base.assumingMemoryBound(to: UInt8.self), UInt64(bytes.count))
        }

        /// Absorbs the 8-byte little-endian length of `bytes`, then `bytes`. Length prefixes make
        /// concatenations of variable-length fields unambiguous.
        public mutating func updateLengthPrefixed(_ bytes: [UInt8]) {
            update(UInt64(bytes.count).littleEndianBytes)
            update(bytes)
        }

        /// Returns the digest and ends the hasher.
        public consuming func finalize() -> [UInt8] {
            let count = outputByteCount
            let statePointer = state
            return [UInt8].filled(count: count) { out in
                _ = crypto_generichash_final(
                    OpaquePointer(statePointer), out, count)
            }
        }
    }
}

extension FixedWidthInteger {
    /// The value's bytes, least significant first.
    public var littleEndianBytes: [UInt8] {
        withUnsafeBytes(of: self.littleEndian) { Array($0) }
    }

    /// The value's bytes, most significant first.
    public var bigEndianBytes: [UInt8] {
        withUnsafeBytes(of: self.bigEndian) { Array($0) }
    }
}

/// SHA-256, only for interoperable formats that require it (the BIP-0039 word checksum).
/// Cloak's own constructions use BLAKE2b.
public enum SHA256 {
    /// The 32-byte digest of `message`.
    public static func hash(_ message: [UInt8]) -> [UInt8] {
        _ = Sodium.ready
        return [UInt8].filled(count: 32) { out in
            withBytes(message) { m in _ = crypto_hash_sha256(out, m, UInt64(message.count)) }
        }
    }
}
