/// Appends the primitive fields of CloakCRDT encodings: LEB128 varints (unsigned, and
/// zig-zag for signed deltas), fixed 16-byte replica ids, and length-prefixed byte strings.
struct ByteWriter {
    var bytes: [UInt8] = []

    init(capacity: Int = 0) {
        bytes.reserveCapacity(capacity)
    }

    mutating func byte(_ value: UInt8) {
        bytes.append(value)
    }

    mutating func varint(_ value: UInt64) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(truncatingIfNeeded: rest))
    }

    mutating func varint(_ value: Int) {
        varint(UInt64(truncatingIfNeeded: value))
    }

    /// Zig-zag maps small negative deltas to small unsigned values (protobuf's sint64).
    mutating func signedVarint(_ value: Int64) {
        varint(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    mutating func replicaID(_ id: ReplicaID) {
        for shift in stride(from: 56, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: id.high >> UInt64(shift)))
        }
        for shift in stride(from: 56, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: id.low >> UInt64(shift)))
        }
    }

    mutating func lengthPrefixed(_ data: some Collection<UInt8>) {
        varint(data.count)
        bytes.append(contentsOf: data)
    }

    mutating func string(_ text: String) {
        var text = text
        text.withUTF8 { buffer in
            varint(buffer.count)
            bytes.append(contentsOf: buffer)
        }
    }

    mutating func timestamp(_ value: HLCTimestamp) {
        varint(value.millis)
        varint(UInt64(value.logical))
    }
}
