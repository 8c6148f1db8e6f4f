import CSodium

/// libsodium must be initialised once per process before use. A Swift global is initialised
/// lazily and atomically, so every entry point touches `Sodium.ready` and pays for the call
/// only the first time. `sodium_init` returns 0 on first success and 1 if already initialised.
enum Sodium {
    static let ready: Bool = sodium_init() >= 0

    /// Throws if libsodium could not initialise, which makes every later call unsafe.
    @inline(__always)
    static func ensure() throws(CryptoError) {
        guard ready else { throw .sodiumUnavailable }
    }
}

/// Constant-time helpers. Comparisons of secrets, MACs and tags must not leak, through timing,
/// the position of the first differing byte (CloakCryptoTests checks the results; the timing
/// property comes from libsodium's `sodium_memcmp`, documented as constant time).
public enum ConstantTime {
    /// True when both byte strings have the same length and contents, compared in time that
    /// depends only on the length.
    public static func equals(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        if lhs.isEmpty { return true }
        _ = Sodium.ready
        return lhs.withUnsafeBytes { a in
            rhs.withUnsafeBytes { b in
                sodium_memcmp(a.baseAddress!, b.baseAddress!, lhs.count) == 0
            }
        }
    }
}

extension Array where Element == UInt8 {
    /// Allocates `count` bytes and lets `body` fill all of them, without a zero-fill pass.
    @inline(__always)
    static func filled(count: Int, _ body: (UnsafeMutablePointer<UInt8>) -> Void) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: Swift.max(count, 1)) { buffer, initialized in
            body(buffer.baseAddress!)
            initialized = count
        }
    }
}

/// Pointer to the bytes of a possibly empty array. libsodium's headers mark pointers
/// `nonnull` even where a zero length makes them unused, so an empty array still needs
/// a valid address.
@inline(__always)
func withBytes<R>(_ bytes: [UInt8], _ body: (UnsafePointer<UInt8>) throws -> R) rethrows -> R {
    if bytes.isEmpty {
        var zero: UInt8 = 0
        return try body(&zero)
    }
    return try bytes.withUnsafeBufferPointer { try body($0.baseAddress!) }
}
