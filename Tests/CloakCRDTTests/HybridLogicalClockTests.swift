import CloakCRDT
import Testing

@Suite("Hybrid logical clock and replica generator")
struct HybridLogicalClockTests {
    @Test("tick follows physical time and stays strictly increasing when time stalls or goes back")
    func tickIsMonotonic() {
        var clock = HybridLogicalClock()
        let a = clock.tick(physicalMillis: 1_000)
        let b = clock.tick(physicalMillis: 1_000)
        let c = clock.tick(physicalMillis: 900)
        let d = clock.tick(physicalMillis: 2_000)
        #expect(a == HLCTimestamp(millis: 1_000, logical: 0))
        #expect(a < b && b < c && c < d)
        #expect(d == HLCTimestamp(millis: 2_000, logical: 0))
    }

    @Test("observe moves the clock past a remote reading within the skew bound")
    func observeMerges() throws {
        var clock = HybridLogicalClock()
        _ = clock.tick(physicalMillis: 1_000)
        try clock.observe(HLCTimestamp(millis: 1_500, logical: 7), physicalMillis: 1_001)
        #expect(clock.tick(physicalMillis: 1_002) == HLCTimestamp(millis: 1_500, logical: 9))
    }

    @Test("ADV-28: a reading more than maxSkewMillis ahead is refused and the clock does not move")
    func skewBound() {
        var clock = HybridLogicalClock(maxSkewMillis: 60_000)
        let before = clock.tick(physicalMillis: 1_000)
        let tenYears: UInt64 = 10 * 365 * 24 * 3_600_000
        #expect(throws: ClockError.self) {
            try clock.observe(HLCTimestamp(millis: 1_000 + tenYears, logical: 0), physicalMillis: 1_000)
        }
        #expect(clock.latest == before)
        #expect(throws: Never.self) {
            try clock.observe(HLCTimestamp(millis: 61_000, logical: 0), physicalMillis: 1_000)
        }
    }

    @Test("an exhausted logical counter advances the millisecond instead of wrapping")
    func logicalOverflow() {
        var clock = HybridLogicalClock(latest: HLCTimestamp(millis: 5, logical: .max))
        #expect(clock.tick(physicalMillis: 5) == HLCTimestamp(millis: 6, logical: 0))
    }

    @Test("a Replica round-trips through its encoding; malformed encodings throw")
    func replicaEncoding() throws {
        var replica = Replica(id: testReplicaID(42), nextCounter: 1_234_567)
        _ = replica.clock.tick(physicalMillis: 99)
        let bytes = replica.encoded()
        #expect(try Replica(decoding: bytes) == replica)
        for length in 0..<bytes.count {
            #expect(throws: CRDTDecodingError.self) { try Replica(decoding: Array(bytes.prefix(length))) }
        }
        #expect(throws: CRDTDecodingError.trailingBytes) { try Replica(decoding: bytes + [0]) }
        #expect(throws: CRDTDecodingError.badMagic) { try Replica(decoding: [0, 0, 0, 0, 1]) }
    }

    @Test("ReplicaID orders by bytes and round-trips its 16 bytes")
    func replicaIDBytes() {
        let bytes: [UInt8] = (0..<16).map { UInt8($0 * 17) }
        let id = ReplicaID(bytes: bytes)
        #expect(id?.bytes == bytes)
        #expect(ReplicaID(bytes: [1, 2, 3]) == nil)
        #expect(ReplicaID(high: 1, low: .max) < ReplicaID(high: 2, low: 0))
    }
}
