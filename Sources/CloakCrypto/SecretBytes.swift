import CSodium

/// Secret bytes (keys, seeds, shared secrets) that are wiped from memory when released,
/// never printed, and compared in constant time.
///
/// ```swift
/// let key = SecretBytes.random(count: 32)
/// print(key)            // "SecretBytes(32 bytes, redacted)"
/// key.withUnsafeBytes { raw in /* hand to libsodium */ }
/// ```
///
/// The bytes live in one heap allocation owned by a final class, so copies of the value share
/// it and `deinit` can `sodium_memzero` it exactly once (`SecretBytesTests` observes the wipe
/// through `_wipe()`). `description`, `debugDescription` and reflection (`dump`, `Mirror`) show
/// only the length.
public struct SecretBytes: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    final class Storage: @unchecked Sendable {
        // Immutable after init (only deinit writes), so sharing across tasks is safe.
        let pointer: UnsafeMutableRawPointer
        let count: Int

        init(count: Int) {
            self.count = count
            pointer = UnsafeMutableRawPointer.allocate(byteCount: Swift.max(count, 1), alignment: 16)
            _ = Sodium.ready
            // Keep secrets out of swap where the OS allows it; failure is not fatal.
            _ = sodium_mlock(pointer, Swift.max(count, 1))
        }

        deinit {
            sodium_munlock(pointer, Swift.max(count, 1))  // munlock also zeroes the region
            sodium_memzero(pointer, Swift.max(count, 1))
            pointer.deallocate()
        }
    }

    let storage: Storage

    /// Copies `bytes` into zeroing storage. The caller should wipe its own copy if it can.
    public init(copying bytes: some Collection<UInt8>) {
        storage = Storage(count: bytes.count)
        let target = storage.pointer.assumingMemoryBound(to: UInt8.self)
        for (i, byte) in bytes.enumerated() { target[i] = byte }
    }

    /// Creates `count` bytes filled by `body`, which writes directly into zeroing storage so
    /// the secret never exists in an ordinary array.
    public init(count: Int, initializingWith body: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows {
        storage = Storage(count: count)
        try body(UnsafeMutableRawBufferPointer(start: storage.pointer, count: count))
    }

    /// `count` random bytes from the operating system (libsodium's `randombytes_buf`).
    public static func random(count: Int) -> SecretBytes { random(count: count, using: SystemRandom()) }

    /// `count` random bytes from `source` (SPI: the simulator and tests).
    @_spi(Randomness)
    public static func random(count: Int, using source: any RandomSource) -> SecretBytes {
        SecretBytes(count: count) { source.fill($0) }
    }

    /// The number of bytes.
    public var count: Int { storage.count }

    /// Calls `body` with the secret bytes. Do not let them escape the closure.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: storage.pointer, count: storage.count))
    }

    /// A copy as an ordinary array, for serialising into encrypted storage or a sealed box.
    /// The caller owns wiping it (see ``wipe(_:)``).
    public func copyBytes() -> [UInt8] {
        withUnsafeBytes { Array($0) }
    }

    /// Constant-time equality (`sodium_memcmp`); lengths are not secret.
    public static func == (lhs: SecretBytes, rhs: SecretBytes) -> Bool {
        guard lhs.count == rhs.count else { return false }
        if lhs.count == 0 { return true }
        return sodium_memcmp(lhs.storage.pointer, rhs.storage.pointer, lhs.count) == 0
    }

    /// Only the length, never the contents.
    public var description: String { "SecretBytes(\(count) bytes, redacted)" }

    /// Only the length, never the contents.
    public var debugDescription: String { description }

    /// Reflection shows no children, so `dump(secret)` cannot reveal the bytes.
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }

    /// Zeroes `bytes` in place (for temporary arrays that held secret material).
    public static func wipe(_ bytes: inout [UInt8]) {
        guard !bytes.isEmpty else { return }
        bytes.withUnsafeMutableBytes { sodium_memzero($0.baseAddress!, $0.count) }
    }

    /// Test hook: zeroes the storage now, as `deinit` would, so a test can observe the wipe
    /// through a surviving reference.
    public func _wipe() {
        sodium_memzero(storage.pointer, storage.count)
    }
}

/// A 32-byte symmetric key (AEAD keys, account data keys, conversation keys, storage keys).
///
/// ```swift
/// let key = SymmetricKey.random()
/// let box = try XChaCha20Poly1305.seal([1, 2, 3], key: key, associatedData: [])
/// ```
public struct SymmetricKey: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    /// The length of every symmetric key in Cloak.
    public static let byteCount = 32

    /// The key bytes, in zeroing storage.
    public let secret: SecretBytes

    /// Wraps 32 secret bytes; any other length throws.
    public init(_ secret: SecretBytes) throws(CryptoError) {
        guard secret.count == Self.byteCount else {
            throw .invalidKeyLength(expected: Self.byteCount, actual: secret.count)
        }
        self.secret = secret
    }

    /// Copies 32 bytes into a key; any other length throws.
    public init(bytes: [UInt8]) throws(CryptoError) {
        try self.init(SecretBytes(copying: bytes))
    }

    /// A fresh random key from the operating system.
    public static func random() -> SymmetricKey { random(using: SystemRandom()) }

    /// A fresh random key from `source` (SPI: the simulator and tests).
    @_spi(Randomness)
    public static func random(using source: any RandomSource) -> SymmetricKey {
        SymmetricKey(unchecked: SecretBytes.random(count: byteCount, using: source))
    }

    init(unchecked secret: SecretBytes) {
        self.secret = secret
    }

    /// Never shows the key.
    public var description: String { "SymmetricKey(redacted)" }
    /// Never shows the key.
    public var debugDescription: String { description }
    /// Reflection shows no children.
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }

    @inline(__always)
    func withKeyPointer<R, E: Error>(_ body: (UnsafePointer<UInt8>) throws(E) -> R) throws(E) -> R {
        try body(UnsafePointer(secret.storage.pointer.assumingMemoryBound(to: UInt8.self)))
    }
}
