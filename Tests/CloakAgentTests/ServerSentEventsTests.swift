import CloakAgent
import Testing

/// The event-stream parser the HTTP model reads chat-completion chunks with.
struct ServerSentEventsTests {
    @Test func splitsEventsAcrossChunksAndLineEndings() throws {
        var parser = ServerSentEvents()
        var events = try parser.feed(Array("data: {\"a\":1}\r\n\r\nda".utf8))
        events += try parser.feed(Array("ta: x\ndata: y\n: comment\nevent: e\n\n".utf8))
        events += try parser.feed(Array("data: [DONE]".utf8))
        events += try parser.finish()
        #expect(events == ["{\"a\":1}", "x\ny", "[DONE]"])
    }

    /// A hostile endpoint that never ends an event cannot grow the agent's memory.
    @Test func refusesAnEventLargerThanTheBound() {
        var parser = ServerSentEvents(maxEventBytes: 16)
        #expect(throws: ServerSentEvents.Malformed.self) {
            _ = try parser.feed(Array("data: 0123456789\ndata: 0123456789\n".utf8))
        }
    }
}
