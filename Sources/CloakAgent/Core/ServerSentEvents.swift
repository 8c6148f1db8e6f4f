/// A parser of the `text/event-stream` format (WHATWG HTML "Server-sent events" §9.2), fed
/// bytes as they arrive and returning each complete event's data: lines are split at LF, CR or
/// CRLF; `data:` lines of one event are joined with LF; a blank line ends the event; comments
/// (`:`) and other fields are ignored. Bounded: an event larger than `maxEventBytes` is a
/// malformed stream, so a hostile endpoint cannot grow memory without limit.
///
/// ```swift
/// var parser = ServerSentEvents()
/// for data in try parser.feed(chunk) { handle(data) }   // "data: {...}\n\n" → "{...}"
/// ```
public struct ServerSentEvents: Sendable {
    /// The stream broke the format or a bound.
    public struct Malformed: Error, Sendable, Equatable {}

    /// Largest event (its data lines together) accepted.
    public let maxEventBytes: Int
    private var line: [UInt8] = []
    private var data: [UInt8] = []
    private var hasData = false
    private var lastWasCR = false

    /// A parser with a bound on event size.
    public init(maxEventBytes: Int = 1 << 20) {
        self.maxEventBytes = maxEventBytes
    }

    /// Feeds bytes; returns the data of every event they complete, in order.
    public mutating func feed(_ bytes: some Sequence<UInt8>) throws(Malformed) -> [String] {
        var events: [String] = []
        for byte in bytes {
            if byte == 0x0A, lastWasCR {
                lastWasCR = false
                continue
            }
            lastWasCR = byte == 0x0D
            if byte == 0x0A || byte == 0x0D {
                if let event = try endLine() { events.append(event) }
                continue
            }
            line.append(byte)
            guard line.count + data.count <= maxEventBytes else { throw Malformed() }
        }
        return events
    }

    /// Ends the stream: an event without its blank line still counts.
    public mutating func finish() throws(Malformed) -> [String] {
        var events: [String] = []
        if !line.isEmpty, let event = try endLine() { events.append(event) }
        if let event = dispatch() { events.append(event) }
        return events
    }

    private mutating func endLine() throws(Malformed) -> String? {
        defer { line = [] }
        guard !line.isEmpty else { return dispatch() }
        if line[0] == UInt8(ascii: ":") { return nil }
        let colon = line.firstIndex(of: UInt8(ascii: ":"))
        let field = colon.map { Array(line[..<$0]) } ?? line
        guard field == Array("data".utf8) else { return nil }
        var value = colon.map { Array(line[($0 + 1)...]) } ?? []
        if value.first == UInt8(ascii: " ") { value.removeFirst() }
        if hasData { data.append(0x0A) }
        data += value
        hasData = true
        guard data.count <= maxEventBytes else { throw Malformed() }
        return nil
    }

    private mutating func dispatch() -> String? {
        guard hasData else { return nil }
        defer {
            data = []
            hasData = false
        }
        return String(decoding: data, as: UTF8.self)
    }
}
