import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import WSClient

/// Why the transport could not reach the server, as a sentence naming the server (host and
/// port) and what failed: what `CloakClient.lastConnectionFailure` holds after a failed
/// attempt, and what tools show when they give up waiting.
///
/// ```swift
/// if let failure = await client.lastConnectionFailure as? TransportError, failure.kind == .untrustedCertificate {
///     suggest("pass the server's CA certificate")
/// }
/// ```
public struct TransportError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure, for callers that add advice.
    public enum Kind: Sendable, Hashable {
        /// Nothing listens at the address (connection refused), or it could not be reached.
        case unreachable
        /// The host name does not resolve.
        case unknownHost
        /// The server's TLS certificate is not trusted (a private CA, a self-signed certificate).
        case untrustedCertificate
        /// The TLS handshake failed for another reason (a plain-HTTP port, a wrong name).
        case tls
        /// The server answered HTTP but refused the WebSocket upgrade (a wrong path).
        case upgradeRefused
        /// The server accepted the connection but did not complete the TLS and WebSocket
        /// handshakes in time (`wss://` to a plain port, a stalled server).
        case handshakeTimeout
        /// The CA file given for `wss://` cannot be used.
        case caFile
        /// Anything else.
        case other
    }

    /// What kind of failure.
    public let kind: Kind
    /// The sentence.
    public let description: String

    init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }

    /// A handshake that did not complete within `timeout`: what to check depends on the scheme.
    init(timedOut timeout: Duration, url: URL) {
        let server = Self.server(url)
        let seconds = timeout.components.seconds
        let waited = seconds > 0 ? "\(seconds) s" : "\(timeout.components.attoseconds / 1_000_000_000_000_000) ms"
        if url.scheme == "wss" {
            self.init(
                .handshakeTimeout,
                "\(server) accepted the connection but did not answer the TLS handshake within \(waited): "
                    + "is it a TLS port? A server without TLS is reached with ws://, not wss://")
        } else {
            self.init(
                .handshakeTimeout,
                "\(server) accepted the connection but did not answer the WebSocket handshake within \(waited): "
                    + "is it a Cloak server, and does it expect TLS (wss://)?")
        }
    }

    private static func server(_ url: URL) -> String {
        "\(url.host ?? "?"):\(url.port ?? (url.scheme == "wss" ? 443 : 80))"
    }

    /// Classifies an error from SwiftNIO, NIOSSL or the WebSocket client. Their own descriptions
    /// are Swift values (`handshakeFailed(sslError([…]))`); this names the server instead.
    init(classifying error: any Error, url: URL) {
        let server = Self.server(url)
        let text = String(describing: error)
        switch error {
        case let error as NIOConnectionError where error.connectionErrors.contains(where: { !($0.error is IOError) }):
            // A TLS failure during connect (an IP address for SNI) arrives wrapped: classify the cause.
            let cause = error.connectionErrors.first(where: { !($0.error is IOError) }).map(\.error)
            self.init(classifying: cause ?? CancellationError(), url: url)
        case let error as NIOConnectionError where error.dnsAError != nil && error.connectionErrors.isEmpty:
            self.init(.unknownHost, "the host name \(error.host) does not resolve")
        case let error as NIOConnectionError:
            let refused = error.connectionErrors.contains { ($0.error as? IOError)?.errnoCode == ECONNREFUSED }
            self.init(.unreachable, refused ? "nothing accepts connections at \(server) (connection refused)" : "\(server) cannot be reached")
        case let error as IOError where error.errnoCode == ECONNREFUSED:
            self.init(.unreachable, "nothing accepts connections at \(server) (connection refused)")
        case let error as ChannelError:
            if case .connectTimeout = error {
                self.init(.unreachable, "\(server) did not answer the connection in time")
            } else {
                self.init(.other, "the connection to \(server) failed")
            }
        case let error as NIOSSLExtraError where error == .cannotUseIPAddressInSNI:
            self.init(.tls, "wss:// needs a host name, not an IP address: TLS checks the server's certificate against the name")
        case let error as NIOSSLExtraError where error == .failedToValidateHostname:
            self.init(.tls, "the TLS certificate of \(server) is not issued for the name \(url.host ?? "")")
        case _ where text.contains("CERTIFICATE_VERIFY_FAILED"):
            self.init(.untrustedCertificate, "the TLS certificate of \(server) is not signed by a trusted certificate authority")
        case is NIOSSLError, is BoringSSLError:
            self.init(.tls, "the TLS handshake with \(server) failed (is it a TLS port?)")
        case let error as WebSocketClientError where error == .webSocketUpgradeFailed:
            self.init(.upgradeRefused, "\(server) answered, but not as a Cloak sync endpoint at \(url.path) (the path is /v1/sync)")
        default:
            self.init(.other, "the connection to \(server) failed")
        }
    }
}
