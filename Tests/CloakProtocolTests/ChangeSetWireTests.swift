import CloakCrypto
import CloakTesting
import Foundation
import SwiftProtobuf
import Testing

@testable import CloakProtocol

/// `ChangeSet(wire:)` reads the plain encoding in place and hands everything else to
/// swift-protobuf. These tests check the two paths against each other on encodings built to
/// hit every way a protobuf message can differ from the plain one, so a receiver accepts,
/// rejects and reads exactly what it would with swift-protobuf alone.
@Suite("Change-set wire parsing")
struct ChangeSetWireTests {
    /// A protobuf field as written: number, wire type, and its bytes after the key (a varint's
    /// encoding, or a length-delimited field's content).
    struct Field {
        var number: Int
        var wireType: Int
        var payload: [UInt8]
    }

    static func varint(_ value: UInt64, padding: Int = 0) -> [UInt8] {
        var out: [UInt8] = []
        var v = value
        while v >= 0x80 {
            out.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        guard padding > 0 else { return out + [UInt8(v)] }
        // A non-minimal encoding: continuation bytes carrying zeros.
        out.append(UInt8(v) | 0x80)
        out += [UInt8](repeating: 0x80, count: padding - 1)
        return out + [0]
    }

    static func encode(_ fields: [Field], keyPadding: Int = 0) -> [UInt8] {
        fields.flatMap { field -> [UInt8] in
            let key = varint(UInt64(field.number << 3 | field.wireType), padding: keyPadding)
            guard field.wireType == 2 else { return key + field.payload }
            return key + varint(UInt64(field.payload.count)) + field.payload
        }
    }

    /// The fields of a sealed change set in field-number order, as swift-protobuf writes them.
    static func fields(of changeSet: ChangeSet) -> [Field] {
        let h = changeSet.header
        return [
            Field(number: 1, wireType: 0, payload: varint(UInt64(h.version))),
            Field(number: 2, wireType: 2, payload: h.account.bytes),
            Field(number: 3, wireType: 2, payload: h.conversation.bytes),
            Field(number: 4, wireType: 2, payload: h.author.bytes),
            Field(number: 5, wireType: 0, payload: varint(h.seq)),
            Field(number: 6, wireType: 2, payload: h.prevHash.bytes),
            Field(number: 7, wireType: 0, payload: varint(h.epoch)),
            Field(number: 8, wireType: 0, payload: varint(h.deviceLogIndex)),
            Field(number: 9, wireType: 2, payload: h.deviceLogHead.bytes),
            Field(number: 10, wireType: 2, payload: h.nonce),
            Field(number: 11, wireType: 2, payload: changeSet.ciphertext),
            Field(number: 12, wireType: 2, payload: changeSet.commitment),
            Field(number: 13, wireType: 2, payload: changeSet.signature),
        ]
    }

    /// What one of swift-protobuf's decodes gives, as comparable values.
    static func contents(_ f: ChangeSetFields) -> [[UInt8]] {
        [
            varint(UInt64(f.version)), varint(f.seq), varint(f.epoch), varint(f.deviceLogIndex),
            Array(f.bytes[f.account]), Array(f.bytes[f.conversation]), Array(f.bytes[f.author]),
            Array(f.bytes[f.prevHash]), Array(f.bytes[f.deviceLogHead]), Array(f.bytes[f.nonce]),
            Array(f.bytes[f.ciphertext]), Array(f.bytes[f.commitment]), Array(f.bytes[f.signature]),
        ]
    }

    enum Path { case inPlace, library }

    /// Parses `wire` both ways and expects the same outcome: the same fields and change set, or
    /// the same error. Returns which path `ChangeSet(wire:)` takes.
    @discardableResult
    static func expectSameOutcome(_ wire: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> Path {
        let scanned = ChangeSetFields.scan(wire)
        let decoded = try? Cloak_V1_ChangeSet(serializedBytes: wire, options: FrameCodec.decodingOptions)
        if let scanned {
            #expect(decoded != nil, "read in place, but swift-protobuf refuses it", sourceLocation: sourceLocation)
            if let decoded {
                #expect(contents(scanned) == contents(ChangeSetFields(decoded)), sourceLocation: sourceLocation)
            }
        }
        let viaParse = Result { () throws(ProtocolError) in try ChangeSet(wire: wire) }
        let viaLibrary = Result { () throws(ProtocolError) in
            let message = try FrameCodec.parse(Cloak_V1_ChangeSet.self, from: wire, what: "change set")
            return try ChangeSet(ChangeSetFields(message), wire: wire)
        }
        switch (viaParse, viaLibrary) {
        case (.success(let a), .success(let b)):
            #expect(a.header == b.header && a.hash == b.hash && a.wire == b.wire, sourceLocation: sourceLocation)
            #expect(
                a.ciphertext == b.ciphertext && a.commitment == b.commitment && a.signature == b.signature,
                sourceLocation: sourceLocation)
        case (.failure(let a), .failure(let b)):
            #expect(a == b, sourceLocation: sourceLocation)
        default:
            Issue.record("one path accepts what the other refuses", sourceLocation: sourceLocation)
        }
        return scanned == nil ? .library : .inPlace
    }

    static func sealed(body: Int, seq: UInt64 = 2) throws -> (AccountFixture, ChangeSet) {
        let f = try AccountFixture()
        let prev = seq == 1 ? ChangeSetHash.zero : ChangeSetHash(hashing: [1])
        return (f, try f.seal(by: f.b, seq: seq, prev: prev, body: Array(repeating: 7, count: body)))
    }

    @Test("a sealed change set is read in place, and its parts match what swift-protobuf reads", arguments: [0, 90, 5_000])
    func sealedChangeSets(body: Int) throws {
        let (f, cs) = try Self.sealed(body: body)
        #expect(Self.expectSameOutcome(cs.wire) == .inPlace)
        let parsed = try ChangeSet(wire: cs.wire)
        #expect(parsed.hash.bytes == BLAKE2b.hash(parsed.signedMessage, outputByteCount: 32))
        try parsed.verifySignature(f.b.signing.publicKey)
        // Field order is free in protobuf: the reversed encoding is the same change set.
        let reversed = try ChangeSet(wire: Self.encode(Self.fields(of: cs).reversed()))
        #expect(reversed.header == cs.header && reversed.hash == cs.hash)
        #expect(Self.expectSameOutcome(reversed.wire) == .inPlace)
    }

    @Test("encodings that differ from the plain one go to swift-protobuf and give its outcome")
    func unusualEncodings() throws {
        let (_, cs) = try Self.sealed(body: 90)
        let plain = Self.fields(of: cs)
        var cases: [[UInt8]] = []
        // A repeated field: protobuf keeps the last value.
        cases.append(Self.encode(plain + [Field(number: 5, wireType: 0, payload: Self.varint(9))]))
        cases.append(Self.encode(plain + [Field(number: 2, wireType: 2, payload: [UInt8](repeating: 1, count: 32))]))
        // Unknown fields, with small and multi-byte keys, of each wire type.
        cases.append(Self.encode(plain + [Field(number: 14, wireType: 0, payload: Self.varint(1))]))
        cases.append(Self.encode(plain + [Field(number: 20_000, wireType: 2, payload: [1, 2, 3])]))
        cases.append(Self.encode(plain + [Field(number: 15, wireType: 5, payload: [1, 2, 3, 4])]))
        cases.append(Self.encode(plain + [Field(number: 16, wireType: 1, payload: [UInt8](repeating: 0, count: 8))]))
        // A known field with another wire type (protobuf treats it as unknown).
        cases.append(Self.encode(plain.map { $0.number == 7 ? Field(number: 7, wireType: 2, payload: [1]) : $0 }))
        cases.append(Self.encode(plain.map { $0.number == 11 ? Field(number: 11, wireType: 0, payload: [1]) : $0 }))
        // Padded keys and padded values.
        cases.append(Self.encode(plain, keyPadding: 2))
        cases.append(
            Self.encode(plain.map { $0.number == 5 ? Field(number: 5, wireType: 0, payload: Self.varint(2, padding: 3)) : $0 }))
        // Widest varints: ten bytes, valid and overlong.
        cases.append(
            Self.encode(plain.map { $0.number == 7 ? Field(number: 7, wireType: 0, payload: Self.varint(.max)) : $0 }))
        cases.append(
            Self.encode(
                plain.map {
                    $0.number == 7 ? Field(number: 7, wireType: 0, payload: [UInt8](repeating: 0xFF, count: 9) + [0x7F]) : $0
                }))
        // A version beyond UInt32 (protobuf truncates it).
        cases.append(
            Self.encode(plain.map { $0.number == 1 ? Field(number: 1, wireType: 0, payload: Self.varint(1 << 32 | 1)) : $0 }))
        // Field number 0, a group, wire types 6 and 7.
        cases.append(Self.encode(plain) + [0x00, 0x01])
        cases.append(Self.encode(plain) + [0x73, 0x74])
        cases.append(Self.encode(plain) + [0x76, 0x01])
        cases.append(Self.encode(plain) + [0x7F, 0x01])
        // Missing fields (proto3 defaults), and the empty message.
        cases.append(Self.encode(plain.filter { $0.number != 13 }))
        cases.append(Self.encode(plain.filter { $0.number != 5 && $0.number != 6 }))
        cases.append([])
        var paths: [Path] = []
        for wire in cases { paths.append(Self.expectSameOutcome(wire)) }
        #expect(paths.contains(.library) && paths.contains(.inPlace))
        // The missing signature and the empty message are read in place and still refused.
        #expect(throws: ProtocolError.invalidField("signature must be 64 bytes")) {
            try ChangeSet(wire: Self.encode(plain.filter { $0.number != 13 }))
        }
    }

    @Test("random damage to a change set's bytes: both paths agree on every variant (seeded)")
    func randomDamage() throws {
        let (_, cs) = try Self.sealed(body: 40)
        let (_, first) = try Self.sealed(body: 40, seq: 1)
        var rng = SeededRandom(seed: 0x5EED_C5)
        var paths: [Path: Int] = [:]
        for round in 0..<3_000 {
            var wire = round % 2 == 0 ? cs.wire : first.wire
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                let position = Int.random(in: 0..<max(wire.count, 1), using: &rng)
                switch Int.random(in: 0..<5, using: &rng) {
                case 0 where !wire.isEmpty: wire[position] ^= UInt8.random(in: 1...255, using: &rng)
                case 1: wire = Array(wire.prefix(position))
                case 2: wire.insert(UInt8.random(in: 0...255, using: &rng), at: min(position, wire.count))
                case 3 where !wire.isEmpty: wire.remove(at: position)
                default:
                    // Damage aimed at the structure: a key byte turned into another key.
                    guard !wire.isEmpty else { break }
                    wire[position] = UInt8(Int.random(in: 1...20, using: &rng) << 3 | Int.random(in: 0...7, using: &rng))
                }
            }
            paths[Self.expectSameOutcome(wire), default: 0] += 1
        }
        // Both paths ran many times (flipped ciphertext bytes stay in place; broken keys do not).
        #expect((paths[.inPlace] ?? 0) > 500 && (paths[.library] ?? 0) > 500)
    }
}
