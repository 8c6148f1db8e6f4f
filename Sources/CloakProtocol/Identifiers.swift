public import CloakCrypto
import Foundation

/// A byte string of one exact length, as every identifier and hash on the wire is.
public protocol FixedLengthBytes: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The exact length.
    static var byteCount: Int { get }
    /// The bytes (always `byteCount` long).
    var bytes: [UInt8] { get }
    /// Wraps bytes already known to have the right length.
    init(unchecked bytes: [UInt8])
}

extension FixedLengthBytes {
    /// Wraps `bytes`, throwing ``ProtocolError/invalidField(_:)`` for any other length (every
    /// decode checks lengths before use).
    public init(validating bytes: some Collection<UInt8>, field: String) throws(ProtocolError) {
        guard bytes.count == Self.byteCount else {
            throw .invalidField("\(field) must be \(Self.byteCount) bytes, got \(bytes.count)")
        }
        self.init(unchecked: Array(bytes))
    }

    /// All zeros (the "no previous" value of hash-chain links).
    public static var zero: Self { Self(unchecked: [UInt8](repeating: 0, count: byteCount)) }

    /// True for the all-zero value.
    public var isZero: Bool { bytes.allSatisfy { $0 == 0 } }

    /// Lowercase hex.
    public var hex: String { Hex.encode(bytes) }

    /// Feeds the bytes in one call: the synthesized version combines them one at a time, which
    /// was among the top costs in profiles of the server's push path (dictionary lookups).
    public func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    /// One `memcmp` instead of the synthesized element-by-element array comparison (these are
    /// public identifiers and digests, so the comparison need not be constant-time).
    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.bytes.withUnsafeBytes { a in
            rhs.bytes.withUnsafeBytes { b in
                guard a.count == b.count else { return false }
                guard let x = a.baseAddress, let y = b.baseAddress else { return true }
                return memcmp(x, y, a.count) == 0
            }
        }
    }

    /// Byte-wise order, so sorting is identical on every platform.
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.bytes.lexicographicallyPrecedes(rhs.bytes) }

    /// A short prefix for logs (identifiers are public metadata, never secrets).
    public var description: String { String(Hex.encode(bytes.prefix(8))) }
}

/// A device: BLAKE2b-128 of its Ed25519 public key (self-certifying).
public struct DeviceID: FixedLengthBytes {
    /// 16 bytes.
    public static let byteCount = 16
    /// The id bytes.
    public let bytes: [UInt8]
    /// Wraps 16 bytes.
    public init(unchecked bytes: [UInt8]) { self.bytes = bytes }

    /// The id of the device whose signing key is `key` (PROTOCOL.md §"Identifiers").
    public init(signingKey key: Ed25519PublicKey) {
        bytes = BLAKE2b.hash(key.bytes, outputByteCount: 16)
    }
}

/// An account: the hash of its device log's genesis entry.
public struct AccountID: FixedLengthBytes {
    /// 32 bytes.
    public static let byteCount = 32
    /// The id bytes.
    public let bytes: [UInt8]
    /// Wraps 32 bytes.
    public init(unchecked bytes: [UInt8]) { self.bytes = bytes }
}

/// A conversation: 16 random bytes chosen by the device that creates it. The all-zero id is
/// the account library document.
public struct ConversationID: FixedLengthBytes {
    /// 16 bytes.
    public static let byteCount = 16
    /// The id bytes.
    public let bytes: [UInt8]
    /// Wraps 16 bytes.
    public init(unchecked bytes: [UInt8]) { self.bytes = bytes }

    /// The account library's id (all zeros).
    public static let library = ConversationID(unchecked: [UInt8](repeating: 0, count: 16))

    /// A fresh random id.
    public static func random(using source: any RandomSource) -> ConversationID {
        ConversationID(unchecked: source.bytes(16))
    }
}

/// A 32-byte BLAKE2b-256 digest: change-set hashes, snapshot hashes, device-log entry hashes.
public struct Digest32: FixedLengthBytes {
    /// 32 bytes.
    public static let byteCount = 32
    /// The digest bytes.
    public let bytes: [UInt8]
    /// Wraps 32 bytes.
    public init(unchecked bytes: [UInt8]) { self.bytes = bytes }

    /// BLAKE2b-256 of `message`.
    public init(hashing message: [UInt8]) {
        bytes = BLAKE2b.hash(message, outputByteCount: 32)
    }
}

/// The hash of a change set (its id).
public typealias ChangeSetHash = Digest32
/// The hash of a device-log entry.
public typealias EntryHash = Digest32
/// The hash of a snapshot.
public typealias SnapshotHash = Digest32
