import CloakServerApp
import Foundation
import Logging
import Synchronization
import Testing

/// `--log-format json`: one JSON object per line, metadata as fields, the fixed fields kept.
@Suite struct JSONLogHandlerTests {
    @Test func eachEventIsOneJSONObjectOnOneLine() throws {
        let lines = Mutex<[String]>([])
        var logger = Logger(label: "cloak-server") { label in
            JSONLogHandler(label: label, level: .info) { line in lines.withLock { $0.append(line) } }
        }
        logger[metadataKey: "node"] = "a"
        logger.info("closing connection", metadata: ["code": "slow_consumer", "message": "spoofed", "n": "\(3)"])
        logger.debug("not written at info level")
        logger.warning("second\nline")
        let written = lines.withLock { $0 }
        #expect(written.count == 2)
        #expect(written.allSatisfy { $0.hasSuffix("\n") && $0.dropLast().firstIndex(of: "\n") == nil })
        let first = try #require(
            try JSONSerialization.jsonObject(with: Data(written[0].utf8)) as? [String: Any])
        #expect(first["message"] as? String == "closing connection")
        #expect(first["level"] as? String == "info" && first["label"] as? String == "cloak-server")
        #expect(first["code"] as? String == "slow_consumer" && first["node"] as? String == "a" && first["n"] as? String == "3")
        #expect((first["time"] as? String)?.contains("T") == true)
        let second = try #require(try JSONSerialization.jsonObject(with: Data(written[1].utf8)) as? [String: Any])
        #expect(second["message"] as? String == "second\nline")
    }
}
