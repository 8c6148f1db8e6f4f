import CloakServerApp
import Testing

/// Sizes and durations as operators write them, and as `--help` and logs print them.
@Suite struct QuantityTests {
    @Test(arguments: [
        ("4 MiB", Int64(4 << 20)), ("4MiB", 4 << 20), ("8 GiB", 8 << 30), ("512 kib", 512 << 10), ("65536", 65_536),
        ("10 MB", 10_000_000), ("1 KB", 1_000), ("3 bytes", 3), ("2 TiB", 2 << 40),
    ])
    func sizesParse(text: String, bytes: Int64) {
        #expect(ByteCount(parsing: text)?.bytes == bytes)
    }

    @Test(arguments: ["", "MiB", "4.5 MiB", "-1", "4 MX", "ten MB", "10 MBytes", "99999999999 TiB"])
    func nonSizesAreRefused(text: String) {
        #expect(ByteCount(parsing: text) == nil)
    }

    @Test func sizesPrintInTheLargestExactUnit() {
        #expect(ByteCount(4 << 20).description == "4 MiB")
        #expect(ByteCount(8 << 30).description == "8 GiB")
        #expect(ByteCount(1_536).description == "1.50 KiB")
        #expect(ByteCount(1_000_000).description == "976.56 KiB")
        #expect(ByteCount(512).description == "512 bytes")
    }

    @Test func durationsParseAndPrint() {
        #expect(DurationText.milliseconds(parsing: "30s") == 30_000)
        #expect(DurationText.milliseconds(parsing: "1h30m") == 5_400_000)
        #expect(DurationText.milliseconds(parsing: "250ms") == 250)
        #expect(DurationText.milliseconds(parsing: "2 min") == 120_000)
        #expect(DurationText.milliseconds(parsing: "1d") == 86_400_000)
        for bad in ["", "30", "s", "1.5h", "3 weeks", "-1s"] { #expect(DurationText.milliseconds(parsing: bad) == nil, "\(bad)") }
        #expect(DurationText.format(milliseconds: 5_400_000) == "1h30m")
        #expect(DurationText.format(milliseconds: 30_000) == "30s")
        #expect(DurationText.format(milliseconds: 1_250) == "1s250ms")
    }
}
