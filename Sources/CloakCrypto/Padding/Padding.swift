import CSodium

/// Length hiding: plaintexts are padded to a small set of bucket sizes before encryption, so
/// the server sees a bucket, not an exact length (ADV-26).
///
/// ```swift
/// let padded = try Padding.pad(plaintext)          // ≥ 256 bytes, Padmé bucket
/// let original = try Padding.unpad(padded)
/// ```
///
/// Bucket rule (PROTOCOL.md §"Padding"): with `L = max(|m| + 1, 256)`, the padded length is
/// Padmé(L) (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files and Communication
/// with PURBs", PETS 2019): `L` rounded up to a multiple of `2^(⌊log₂ L⌋ − ⌊log₂ ⌊log₂ L⌋⌋ − 1)`,
/// which leaks O(log log L) bits and wastes at most ~12%. The pad itself is ISO/IEC 7816-4
/// (`0x80` then zeros), written and removed by libsodium's `sodium_pad`/`sodium_unpad`, which
/// run in time independent of the content.
public enum Padding {
    /// The smallest padded size: everything shorter looks the same.
    public static let minimumPaddedLength = 256

    /// The padded length for a message of `length` bytes.
    public static func paddedLength(for length: Int) -> Int {
        let target = Swift.max(length + 1, minimumPaddedLength)
        let block = blockSize(for: target)
        return (target + block - 1) / block * block
    }

    /// Padmé's rounding granularity for a length.
    static func blockSize(for length: Int) -> Int {
        let e = Int.bitWidth - 1 - length.leadingZeroBitCount  // ⌊log₂ L⌋
        let s = Int.bitWidth - 1 - e.leadingZeroBitCount  // ⌊log₂ e⌋
        let bits = Swift.max(e - s - 1, 0)
        return 1 << bits
    }

    /// Pads `message` to its bucket. Throws if the result would exceed `maximumLength`.
    public static func pad(_ message: [UInt8], maximumLength: Int = Int(Int32.max)) throws(CryptoError) -> [UInt8] {
        let total = paddedLength(for: message.count)
        guard total <= maximumLength else { throw .paddingTooLarge(requested: total, maximum: maximumLength) }
        _ = Sodium.ready
        var buffer = message
        buffer.reserveCapacity(total)
        buffer.append(contentsOf: repeatElement(0, count: total - message.count))
        var paddedCount = 0
        // A block size of `total - |m|`... would not do: sodium_pad pads to the next multiple of
        // the block size strictly above |m|. Using `total` itself as the block gives exactly `total`
        // because |m| < total always holds here.
        let status = buffer.withUnsafeMutableBufferPointer { b in
            sodium_pad(&paddedCount, b.baseAddress!, message.count, total, total)
        }
        guard status == 0, paddedCount == total else { throw .invalidPadding }
        return buffer
    }

    /// Removes the padding. Throws ``CryptoError/invalidPadding`` if no valid marker is found.
    public static func unpad(_ padded: [UInt8]) throws(CryptoError) -> [UInt8] {
        guard !padded.isEmpty else { throw .invalidPadding }
        _ = Sodium.ready
        var unpaddedCount = 0
        let status = padded.withUnsafeBufferPointer { b in
            sodium_unpad(&unpaddedCount, b.baseAddress!, padded.count, padded.count)
        }
        guard status == 0 else { throw .invalidPadding }
        return Array(padded[..<unpaddedCount])
    }
}
