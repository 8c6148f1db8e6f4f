import CloakServer
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import NIOCore
import Prometheus

/// The request context of the server: Hummingbird's WebSocket-capable context plus the
/// channel, which the sync handler needs to force-close a socket whose peer stopped reading.
struct SyncRequestContext: RequestContext, WebSocketRequestContext {
    var coreContext: CoreRequestContextStorage
    let webSocket: WebSocketHandlerReference<SyncRequestContext>
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        webSocket = .init()
        channel = source.channel
    }
}

extension CloakHTTPServer {
    /// `/healthz` (the process serves), `/readyz` (the store answers; 503 otherwise) and
    /// `/metrics` (Prometheus text format).
    func addHealthRoutes(to router: Router<SyncRequestContext>) {
        let store = store
        let prometheus = prometheus
        let registry = registry
        let gauges = gauges
        router.get("/healthz") { _, _ in "ok\n" }
        router.get("/readyz") { _, _ -> Response in
            guard !registry.isShuttingDown else {
                return Response(status: .serviceUnavailable, body: .init(byteBuffer: ByteBuffer(string: "shutting down\n")))
            }
            do {
                try await store.ping(within: .seconds(2))
                return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "ready\n")))
            } catch {
                return Response(status: .serviceUnavailable, body: .init(byteBuffer: ByteBuffer(string: "store unavailable\n")))
            }
        }
        router.get("/metrics") { _, _ -> Response in
            gauges.readProcess()
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(bytes: prometheus.emitToBuffer())))
        }
    }
}
