import Foundation

/// The fields of a serialised `ChangeSet`: its integers, and where each bytes field lies in
/// one buffer (`bytes`), which is the received wire itself when it could be read in place.
///
/// A server parses every pushed change set, and swift-protobuf's decoder copied each bytes
/// field into a fresh `Data` that ``ChangeSet`` then copied into an array again: most of the
/// 5–9 µs a 1 KiB change set took to parse here, of which its BLAKE2b hash is about 2 µs.
/// ``scan(_:)`` reads the plain encoding — what every encoder writes — in one pass and copies
/// nothing. Anything else goes to swift-protobuf, so both paths accept, reject and read exactly
/// the same inputs (the differential tests in `ChangeSetWireTests` check it).
struct ChangeSetFields {
    var version: UInt32 = 0
    var seq: UInt64 = 0
    var epoch: UInt64 = 0
    var deviceLogIndex: UInt64 = 0
    /// The buffer the ranges below point into.
    var bytes: [UInt8]
    var account: Range<Int> = 0..<0
    var conversation: Range<Int> = 0..<0
    var author: Range<Int> = 0..<0
    var prevHash: Range<Int> = 0..<0
    var deviceLogHead: Range<Int> = 0..<0
    var nonce: Range<Int> = 0..<0
    var ciphertext: Range<Int> = 0..<0
    var commitment: Range<Int> = 0..<0
    var signature: Range<Int> = 0..<0

    /// Reads `wire` in place when it is in the plain encoding: every field at most once, with
    /// its declared wire type and a one-byte key, no field this version does not know, and
    /// integers that fit their type. Returns nil otherwise — a repeated field (protobuf keeps
    /// the last), an unknown or mistyped field (protobuf skips it), a truncated or malformed
    /// encoding (an error) — and the caller decodes with swift-protobuf instead.
    static func scan(_ wire: [UInt8]) -> ChangeSetFields? {
        var fields = ChangeSetFields(bytes: wire)
        let found = wire.withUnsafeBufferPointer { buffer -> Bool in
            var reader = VarintReader(buffer: buffer)
            var seen: UInt16 = 0
            while reader.position < buffer.count {
                let key = buffer[reader.position]
                reader.position += 1
                let number = Int(key >> 3)
                // A key byte with its high bit set is a field number above 15 or a padded key.
                guard key < 0x80, (1...13).contains(number), seen & (1 << number) == 0 else { return false }
                seen |= 1 << number
                switch number {
                case 1, 5, 7, 8:
                    guard key & 7 == 0, let value = reader.varint() else { return false }
                    switch number {
                    case 1:
                        guard value <= UInt64(UInt32.max) else { return false }
                        fields.version = UInt32(value)
                    case 5: fields.seq = value
                    case 7: fields.epoch = value
                    default: fields.deviceLogIndex = value
                    }
                default:
                    guard key & 7 == 2, let length = reader.varint(), length <= UInt64(buffer.count - reader.position)
                    else { return false }
                    let range = reader.position..<(reader.position + Int(length))
                    reader.position = range.upperBound
                    switch number {
                    case 2: fields.account = range
                    case 3: fields.conversation = range
                    case 4: fields.author = range
                    case 6: fields.prevHash = range
                    case 9: fields.deviceLogHead = range
                    case 10: fields.nonce = range
                    case 11: fields.ciphertext = range
                    case 12: fields.commitment = range
                    default: fields.signature = range
                    }
                }
            }
            return true
        }
        return found ? fields : nil
    }

    /// The fields of a message swift-protobuf decoded, copied into one buffer.
    init(_ m: Cloak_V1_ChangeSet) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(m.ciphertext.count + 256)
        func append(_ data: Data) -> Range<Int> {
            let start = bytes.count
            bytes.append(contentsOf: data)
            return start..<bytes.count
        }
        account = append(m.accountID)
        conversation = append(m.conversationID)
        author = append(m.author)
        prevHash = append(m.prevHash)
        deviceLogHead = append(m.deviceLogHead)
        nonce = append(m.nonce)
        ciphertext = append(m.ciphertext)
        commitment = append(m.commitment)
        signature = append(m.signature)
        self.bytes = bytes
        version = m.version
        seq = m.seq
        epoch = m.epoch
        deviceLogIndex = m.deviceLogIndex
    }

    private init(bytes: [UInt8]) {
        self.bytes = bytes
    }
}

/// Base-128 varints as protobuf writes them.
private struct VarintReader {
    let buffer: UnsafeBufferPointer<UInt8>
    var position = 0

    /// The varint at `position`, or nil when it is truncated or longer than a UInt64 holds
    /// (ten bytes, the last at most 1, which ends the loop either way): those go to
    /// swift-protobuf, which decides.
    mutating func varint() -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while position < buffer.count {
            let byte = buffer[position]
            position += 1
            if shift == 63, byte > 1 { return nil }
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return value }
            shift += 7
        }
        return nil
    }
}
