import CloakCrypto
import Foundation

/// A running hash of everything a run did, in order: every connection, every frame's bytes,
/// every state change and event on every device. Two runs of one seed must end with equal
/// hashes; the first difference between two runs is a nondeterminism bug.
struct TraceHash {
    private(set) var digest = [UInt8](repeating: 0, count: 32)
    private(set) var entries = 0

    mutating func add(_ label: String, _ device: Int, _ bytes: [UInt8] = []) {
        var message = digest
        message += Array(label.utf8) + [0]
        message += UInt64(bitPattern: Int64(device)).littleEndianBytes + UInt64(bytes.count).littleEndianBytes
        message += bytes
        digest = BLAKE2b.hash(message)
        entries += 1
    }

    /// The first 16 bytes as hex.
    var hex: String { digest.prefix(16).map { String(format: "%02x", $0) }.joined() }
}
