import Foundation
import Logging
import NIOCore
import NIOSSL
import Synchronization

/// The server's TLS certificate chain and key, read again from their files on request (SIGHUP):
/// every TLS handshake after a reload presents the new pair through NIOSSL's context callback,
/// while connections already open keep theirs, so renewing a certificate drops nobody.
final class CertificateReloader: Sendable {
    /// Why the certificate files could not be used, as a sentence naming the file.
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    private struct Pair: Sendable {
        var chain: [NIOSSLCertificateSource]
        var key: NIOSSLPrivateKeySource
    }

    let certificatePath: String
    let keyPath: String
    private let current: Mutex<Pair>

    /// Reads both files (a failure here stops the server from starting).
    init(certificatePath: String, keyPath: String) throws(Failure) {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        current = Mutex(try Self.read(certificatePath, keyPath))
    }

    /// Reads the files again; on failure the old pair stays in use and the error says why.
    func reload() throws(Failure) {
        let pair = try Self.read(certificatePath, keyPath)
        current.withLock { $0 = pair }
    }

    /// The server TLS configuration: the pair read at start, replaced per handshake by the
    /// current one.
    var configuration: TLSConfiguration {
        let pair = current.withLock { $0 }
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: pair.chain, privateKey: pair.key)
        configuration.sslContextCallback = { [self] _, promise in
            let pair = current.withLock { $0 }
            var override = NIOSSLContextConfigurationOverride()
            override.certificateChain = pair.chain
            override.privateKey = pair.key
            promise.succeed(override)
        }
        return configuration
    }

    private static func read(_ certificatePath: String, _ keyPath: String) throws(Failure) -> Pair {
        let chain: [NIOSSLCertificate]
        do { chain = try NIOSSLCertificate.fromPEMFile(certificatePath) } catch {
            throw Failure(
                description: "The TLS certificate \(certificatePath) could not be read as a PEM certificate chain; "
                    + "check the path and the file.")
        }
        guard !chain.isEmpty else {
            throw Failure(description: "The TLS certificate file \(certificatePath) holds no certificate; check the file.")
        }
        let key: NIOSSLPrivateKey
        do { key = try NIOSSLPrivateKey(file: keyPath, format: .pem) } catch {
            throw Failure(
                description: "The TLS private key \(keyPath) could not be read as a PEM private key; check the path and the file.")
        }
        return Pair(chain: chain.map { .certificate($0) }, key: .privateKey(key))
    }
}

/// The client's address for the per-address limits: the socket's peer, or, when that peer is a
/// trusted load balancer, the last address its `X-Forwarded-For` adds (the one it saw; anything
/// before it the client could have written itself).
enum ClientAddress {
    static func resolve(peer: SocketAddress?, forwardedFor: String?, trustedProxies: Set<String>) -> String? {
        guard let peerIP = peer?.ipAddress else { return nil }
        guard trustedProxies.contains(peerIP), let forwardedFor,
            let last = forwardedFor.split(separator: ",").last?.trimmingCharacters(in: .whitespaces), !last.isEmpty
        else { return peerIP }
        return last
    }
}
