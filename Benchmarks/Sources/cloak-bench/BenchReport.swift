import Foundation

/// Collects the measurements of one benchmark suite and prints them as a table, or as one
/// JSON object on the last line (`--json`), so scripts and notes can quote exact numbers.
///
/// ```swift
/// var report = BenchReport(suite: "crypto")
/// report.add("aead.seal_open.16KiB.cloak", 812.4, unit: "MB/s")
/// report.print(json: false)
/// ```
struct BenchReport {
    struct Row {
        let name: String
        let value: Double
        let unit: String
        let note: String
    }

    let suite: String
    private(set) var rows: [Row] = []

    init(suite: String) {
        self.suite = suite
    }

    mutating func add(_ name: String, _ value: Double, unit: String, note: String = "") {
        rows.append(Row(name: name, value: value, unit: unit, note: note))
        // Progress goes to stderr so `--json` keeps stdout machine-readable.
        FileHandle.standardError.write(Data("  \(name): \(Self.format(value)) \(unit)\n".utf8))
    }

    func print(json: Bool) {
        if json {
            var object: [String: Any] = ["suite": suite]
            var metrics: [String: Any] = [:]
            for row in rows {
                metrics[row.name] = ["value": row.value, "unit": row.unit]
            }
            object["metrics"] = metrics
            object["machine"] = ["cores": ProcessInfo.processInfo.activeProcessorCount]
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            Swift.print(String(decoding: data, as: UTF8.self))
            return
        }
        let width = max(10, rows.map(\.name.count).max() ?? 10)
        Swift.print("\(suite) benchmark")
        Swift.print(String(repeating: "-", count: width + 30))
        for row in rows {
            let name = row.name.padding(toLength: width, withPad: " ", startingAt: 0)
            let note = row.note.isEmpty ? "" : "  (\(row.note))"
            Swift.print("\(name)  \(Self.format(row.value).leftPadded(14)) \(row.unit)\(note)")
        }
    }

    static func format(_ value: Double) -> String {
        if value >= 1000 { return String(format: "%.0f", value) }
        if value >= 10 { return String(format: "%.1f", value) }
        return String(format: "%.3f", value)
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}

/// Measurement helpers shared by every suite.
enum Measure {
    /// Seconds taken by `body`, on the monotonic clock.
    static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let clock = ContinuousClock()
        let elapsed = try clock.measure(body)
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    /// Best (minimum) of `repeats` timings: the least disturbed run on a shared, noisy machine.
    static func best(of repeats: Int, _ body: () throws -> Void) rethrows -> Double {
        var best = Double.infinity
        for _ in 0..<repeats {
            best = min(best, try seconds(body))
        }
        return best
    }

    /// Resident set size of this process in bytes (Linux `/proc/self/statm`).
    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
