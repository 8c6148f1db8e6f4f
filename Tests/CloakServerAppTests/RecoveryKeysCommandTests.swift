import CloakServer
import CloakServerApp
import Foundation
import Testing

/// `cloak-server recovery-keys generate | check | rotate` (docs/operations.md "Recovery keys").
@Suite struct RecoveryKeysCommandTests {
    @Test("rotating adds a fresh current version and keeps every older one, comments and all")
    func rotationKeepsOlderVersions() throws {
        let generated = RecoveryKeysCommand.generate()
        #expect(try RecoveryKeysCommand.check(generated) == "recovery keys: versions 1; current 1")
        let once = try RecoveryKeysCommand.rotate(generated)
        #expect(once.version == 2)
        #expect(try RecoveryKeysCommand.check(once.text) == "recovery keys: versions 1, 2; current 2")
        let twice = try RecoveryKeysCommand.rotate(once.text)
        #expect(try RecoveryKeysCommand.check(twice.text) == "recovery keys: versions 1, 2, 3; current 3")
        // The older lines are untouched (their seeds evaluate existing enrollments); the comment stays.
        let keyLines = { (text: String) in text.split(separator: "\n").filter { $0.hasPrefix("key ") } }
        #expect(Array(keyLines(twice.text).prefix(2)) == keyLines(once.text))
        #expect(keyLines(once.text).first == keyLines(generated).first)
        #expect(twice.text.contains("# Cloak recovery (OPRF) keys."))
        // Each rotation draws a fresh seed.
        let seeds = Set(keyLines(twice.text).map { $0.split(separator: " ").last })
        #expect(seeds.count == 3)
        // The old set and the rotated one agree on version 1.
        let old = try RecoveryKeySet(parsing: generated)
        let new = try RecoveryKeySet(parsing: twice.text)
        #expect(old.has(version: 1) && new.has(version: 1) && new.current == 3 && old != new)
    }

    @Test("a broken key file is refused by rotate with the same sentence as check, and nothing is written")
    func rotationRefusesABrokenFile() {
        #expect(throws: RecoveryKeyError.self) { try RecoveryKeysCommand.rotate("cloak-recovery-keys 1\nkey 1 00\ncurrent 1\n") }
        #expect(throws: RecoveryKeyError.self) { try RecoveryKeysCommand.rotate("") }
    }
}
