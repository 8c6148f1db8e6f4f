import ArgumentParser
import CSodium
@_spi(Randomness) import CloakCrypto

/// `scripts/bench crypto`: CloakCrypto's wrappers next to direct libsodium calls in the same
/// run, so the ratio is the wrapper's overhead on this (shared, noisy) machine.
struct CryptoSuite: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crypto", abstract: "AEAD, Ed25519, sealed box and BLAKE2b throughput: wrappers vs raw libsodium.")

    @OptionGroup var options: SuiteOptions

    func run() throws {
        _ = sodium_init()
        var report = BenchReport(suite: "crypto")
        for (label, size) in [("64B", 64), ("1KiB", 1024), ("16KiB", 16 * 1024), ("1MiB", 1 << 20)] {
            try aead(label: label, size: size, report: &report)
        }
        try signatures(report: &report)
        try sealedBox(report: &report)
        blake2b(report: &report)
        report.print(json: options.json)
    }

    /// Iterations so each timing covers roughly `targetBytes` of payload.
    private func iterations(for size: Int, targetBytes: Int = 64 << 20) -> Int {
        max(20, targetBytes / size)
    }

    private func aead(label: String, size: Int, report: inout BenchReport) throws {
        let key = SymmetricKey.random()
        let keyBytes = key.secret.copyBytes()
        let message = SystemRandom().bytes(size)
        let ad = [UInt8](repeating: 7, count: 32)
        let n = iterations(for: size)
        var sink = 0
        // Interleave the two measurements and keep the best of 5 of each, so a burst of load
        // from other processes does not land on one side only.
        var cloak = Double.infinity
        var raw = Double.infinity
        for _ in 0..<5 {
            cloak = min(cloak, try Measure.seconds {
                for _ in 0..<n {
                    let box = XChaCha20Poly1305.seal(message, key: key, associatedData: ad)
                    sink &+= try XChaCha20Poly1305.open(box, key: key, associatedData: ad).count
                }
            })
            raw = min(raw, Measure.seconds {
                var nonce = [UInt8](repeating: 0, count: 24)
                var ciphertext = [UInt8](repeating: 0, count: size + 16)
                var plaintext = [UInt8](repeating: 0, count: size)
                for _ in 0..<n {
                    randombytes_buf(&nonce, 24)
                    crypto_aead_xchacha20poly1305_ietf_encrypt(
                        &ciphertext, nil, message, UInt64(size), ad, UInt64(ad.count), nil, nonce, keyBytes)
                    if crypto_aead_xchacha20poly1305_ietf_decrypt(
                        &plaintext, nil, nil, ciphertext, UInt64(size + 16), ad, UInt64(ad.count), nonce, keyBytes)
                        == 0
                    {
                        sink &+= plaintext.count
                    }
                }
            })
        }
        precondition(sink > 0)
        let megabytes = Double(size * n) / 1e6
        report.add("aead.seal_open.\(label).cloak", megabytes / cloak, unit: "MB/s")
        report.add("aead.seal_open.\(label).libsodium", megabytes / raw, unit: "MB/s")
        report.add("aead.seal_open.\(label).overhead", (cloak / raw - 1) * 100, unit: "%", note: "wrapper vs raw")
    }

    private func signatures(report: inout BenchReport) throws {
        let key = Ed25519PrivateKey()
        let message = SystemRandom().bytes(300)
        let signature = key.signature(for: message)
        let n = 20_000
        var ok = 0
        let sign = Measure.best(of: 3) { for _ in 0..<n { ok &+= key.signature(for: message).count } }
        let verify = Measure.best(of: 3) {
            for _ in 0..<n where key.publicKey.isValidSignature(signature, for: message) { ok &+= 1 }
        }
        let pk = key.publicKey.bytes
        let rawVerify = Measure.best(of: 3) {
            for _ in 0..<n where crypto_sign_verify_detached(signature, message, UInt64(message.count), pk) == 0 {
                ok &+= 1
            }
        }
        precondition(ok > 0)
        report.add("ed25519.sign.cloak", Double(n) / sign, unit: "ops/s")
        report.add("ed25519.verify.cloak", Double(n) / verify, unit: "ops/s")
        report.add("ed25519.verify.libsodium", Double(n) / rawVerify, unit: "ops/s")
    }

    private func sealedBox(report: inout BenchReport) throws {
        let recipient = X25519PrivateKey()
        let sealed = try SealedBox.seal(SystemRandom().bytes(32), to: recipient.publicKey)
        let n = 10_000
        var ok = 0
        let open = try Measure.best(of: 3) { for _ in 0..<n { ok &+= try SealedBox.open(sealed, with: recipient).count } }
        let secret = recipient.secret.copyBytes()
        let pk = recipient.publicKey.bytes
        var out = [UInt8](repeating: 0, count: 32)
        let raw = Measure.best(of: 3) {
            for _ in 0..<n where crypto_box_seal_open(&out, sealed, UInt64(sealed.count), pk, secret) == 0 { ok &+= 1 }
        }
        precondition(ok > 0)
        report.add("sealed_box.open.cloak", Double(n) / open, unit: "ops/s")
        report.add("sealed_box.open.libsodium", Double(n) / raw, unit: "ops/s")
    }

    private func blake2b(report: inout BenchReport) {
        let message = SystemRandom().bytes(1 << 20)
        let n = 200
        var sink = 0
        let cloak = Measure.best(of: 3) { for _ in 0..<n { sink &+= Int(BLAKE2b.hash(message)[0]) } }
        var out = [UInt8](repeating: 0, count: 32)
        let raw = Measure.best(of: 3) {
            for _ in 0..<n {
                crypto_generichash(&out, 32, message, UInt64(message.count), nil, 0)
                sink &+= Int(out[0])
            }
        }
        report.add("blake2b.1MiB.cloak", Double(n * message.count) / 1e6 / cloak, unit: "MB/s")
        report.add("blake2b.1MiB.libsodium", Double(n * message.count) / 1e6 / raw, unit: "MB/s")
        if sink == -1 { report.add("never", 0, unit: "") }
    }
}
