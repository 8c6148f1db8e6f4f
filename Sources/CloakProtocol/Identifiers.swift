@_spi(Randomness) public import CloakCrypto
public import Foundation

/// A byte string of one exact length, as every identifier and hash on the wire is. The bytes
/// live inline (``InlineBytes16``/``InlineBytes32``), not in an array: the server copies,
/// hashes and compares several of these per change set, and an array each meant a heap
/// allocation, reference counting on every copy and a pointer chase on every comparison.
public protocol FixedLengthBytes: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The inline storage, which fixes the length.
    associatedtype Storage: InlineBytes
    /// The bytes, in place.
    var storage: Storage { get }
    /// Wraps storage of the right length (every `Storage` value has it).
    init(storage: Storage)
}

extension FixedLengthBytes {
    /// The exact length.
    public static var byteCount: Int { Storage.byteCount }

    /// The bytes as an array (a copy; ``withUnsafeBytes(_:)`` reads them in place).
    public var bytes: [UInt8] { storage.withUnsafeBytes { Array($0) } }

    /// Calls `body` with the bytes in place.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try storage.withUnsafeBytes(body)
    }

    /// The bytes as `Data` (one copy, where `Data(bytes)` would make two).
    public var data: Data { storage.withUnsafeBytes { Data($0) } }

    /// Wraps bytes the caller knows to be `byteCount` long: values this process computed or
    /// checked before. Any other length is a programming error and stops the process; bytes
    /// from outside go through ``init(validating:field:)``.
    public init(unchecked bytes: [UInt8]) {
        precondition(
            bytes.count == Storage.byteCount, "\(Self.self) needs \(Storage.byteCount) bytes, got \(bytes.count)")
        self.init(storage: bytes.withUnsafeBytes { Storage(copying: $0) })
    }

    /// Wraps `bytes`, throwing ``ProtocolError/invalidField(_:)`` for any other length (every
    /// decode checks lengths before use).
    public init(validating bytes: some Collection<UInt8>, field: String) throws(ProtocolError) {
        guard bytes.count == Self.byteCount else {
            throw .invalidField("\(field) must be \(Self.byteCount) bytes, got \(bytes.count)")
        }
        let storage =
            bytes.withContiguousStorageIfAvailable { Storage(copying: UnsafeRawBufferPointer($0)) }
            ?? Array(bytes).withUnsafeBytes { Storage(copying: $0) }
        self.init(storage: storage)
    }

    /// All zeros (the "no previous" value of hash-chain links).
    public static var zero: Self { Self(storage: Storage()) }

    /// True for the all-zero value.
    public var isZero: Bool { storage == Storage() }

    /// Lowercase hex.
    public var hex: String { Hex.encode(bytes) }

    /// Hashes the inline words.
    public func hash(into hasher: inout Hasher) { storage.hash(into: &hasher) }

    /// Word-wise equality (these are public identifiers and digests, so the comparison need
    /// not be constant-time).
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.storage == rhs.storage }

    /// Byte-wise order, so sorting is identical on every platform.
    public static func < (lhs: Self, rhs: Self) -> Bool {
        lhs.storage.withUnsafeBytes { a in
            rhs.storage.withUnsafeBytes { b in memcmp(a.baseAddress!, b.baseAddress!, a.count) < 0 }
        }
    }

    /// A short prefix for logs (identifiers are public metadata, never secrets).
    public var description: String { String(Hex.encode(bytes.prefix(8))) }
}

/// A fixed number of bytes held inline, as a tuple of machine words (a homogeneous tuple is
/// laid out contiguously, so its memory is the bytes in order).
public protocol InlineBytes: Hashable, Sendable {
    /// The words, `UInt64`s in a tuple.
    associatedtype Words: BitwiseCopyable
    /// The bytes as words.
    var words: Words { get }
    /// Wraps words (every value of `Words` is a valid byte string of the length).
    init(words: Words)
    /// All zeros.
    init()
}

extension InlineBytes {
    /// The length in bytes.
    public static var byteCount: Int { MemoryLayout<Words>.size }

    /// Copies exactly `byteCount` bytes from `source`.
    public init(copying source: UnsafeRawBufferPointer) {
        precondition(source.count == Self.byteCount)
        var words = Self().words
        Swift.withUnsafeMutableBytes(of: &words) { $0.copyMemory(from: source) }
        self.init(words: words)
    }

    /// Calls `body` with the bytes in place.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try Swift.withUnsafeBytes(of: words) { (buffer) throws(E) -> R in try body(buffer) }
    }
}

/// Sixteen bytes inline (device and conversation ids).
public struct InlineBytes16: InlineBytes {
    /// The bytes as two words.
    public let words: (UInt64, UInt64)
    /// Wraps two words.
    public init(words: (UInt64, UInt64)) { self.words = words }
    /// All zeros.
    public init() { words = (0, 0) }
    /// Word-wise equality.
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.words == rhs.words }
    /// Feeds both words.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
    }
}

/// Thirty-two bytes inline (account ids and digests).
public struct InlineBytes32: InlineBytes {
    /// The bytes as four words.
    public let words: (UInt64, UInt64, UInt64, UInt64)
    /// Wraps four words.
    public init(words: (UInt64, UInt64, UInt64, UInt64)) { self.words = words }
    /// All zeros.
    public init() { words = (0, 0, 0, 0) }
    /// Word-wise equality.
    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.words.0 == rhs.words.0 && lhs.words.1 == rhs.words.1 && lhs.words.2 == rhs.words.2
            && lhs.words.3 == rhs.words.3
    }
    /// Feeds the four words.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
        hasher.combine(words.2)
        hasher.combine(words.3)
    }
}

/// A device: BLAKE2b-128 of its Ed25519 public key (self-certifying).
public struct DeviceID: FixedLengthBytes {
    /// The 16 id bytes.
    public let storage: InlineBytes16
    /// Wraps 16 bytes.
    public init(storage: InlineBytes16) { self.storage = storage }

    /// The id of the device whose signing key is `key` (PROTOCOL.md §"Identifiers").
    public init(signingKey key: Ed25519PublicKey) {
        self.init(unchecked: BLAKE2b.hash(key.bytes, outputByteCount: 16))
    }
}

/// An account: the hash of its device log's genesis entry.
public struct AccountID: FixedLengthBytes {
    /// The 32 id bytes.
    public let storage: InlineBytes32
    /// Wraps 32 bytes.
    public init(storage: InlineBytes32) { self.storage = storage }
}

/// A conversation: 16 random bytes chosen by the device that creates it. The all-zero id is
/// the account library document.
public struct ConversationID: FixedLengthBytes {
    /// The 16 id bytes.
    public let storage: InlineBytes16
    /// Wraps 16 bytes.
    public init(storage: InlineBytes16) { self.storage = storage }

    /// The account library's id (all zeros).
    public static let library = ConversationID(storage: InlineBytes16())

    /// A fresh random id.
    @_spi(Randomness)
    public static func random(using source: any RandomSource) -> ConversationID {
        ConversationID(unchecked: source.bytes(16))
    }
}

/// A 32-byte BLAKE2b-256 digest: change-set hashes, snapshot hashes, device-log entry hashes.
public struct Digest32: FixedLengthBytes {
    /// The 32 digest bytes.
    public let storage: InlineBytes32
    /// Wraps 32 bytes.
    public init(storage: InlineBytes32) { self.storage = storage }

    /// BLAKE2b-256 of `message`.
    public init(hashing message: [UInt8]) {
        self.init(unchecked: BLAKE2b.hash(message, outputByteCount: 32))
    }
}

/// The hash of a change set (its id).
public typealias ChangeSetHash = Digest32
/// The hash of a device-log entry.
public typealias EntryHash = Digest32
/// The hash of a snapshot.
public typealias SnapshotHash = Digest32
