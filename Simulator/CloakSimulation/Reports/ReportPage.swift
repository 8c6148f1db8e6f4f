/// What a report page shows, independent of how it is drawn: a title, the checks' verdicts, a
/// few headline facts and the figures. `cloak-sim run` and `cloak-sim live` each build one;
/// ``HTMLReport`` draws it as one self-contained page.
///
/// ```swift
/// var page = ReportPage(title: "cloak-sim live", subtitle: "10 accounts × 3 devices", passed: true)
/// page.figures.append(.bars(id: "latency-histogram", title: "Latency", caption: "…", series: ["renders"],
///                           groups: [.init(label: "≤ 15 ms", values: [12])]))
/// let html = HTMLReport.render(page)
/// ```
public struct ReportPage: Sendable {
    /// One check's verdict.
    public struct Verdict: Sendable {
        /// The check.
        public var name: String
        /// Whether it passed.
        public var passed: Bool
        /// What was checked and found.
        public var detail: String

        /// A verdict.
        public init(name: String, passed: Bool, detail: String) {
            self.name = name
            self.passed = passed
            self.detail = detail
        }
    }

    /// One group of bars (one bar per series).
    public struct Group: Sendable {
        /// The label under the group.
        public var label: String
        /// One value per series.
        public var values: [Double]

        /// A group.
        public init(label: String, values: [Double]) {
            self.label = label
            self.values = values
        }
    }

    /// One line of a time series.
    public struct Line: Sendable {
        /// Its name in the legend.
        public var name: String
        /// One value per x step.
        public var values: [Double]

        /// A line.
        public init(name: String, values: [Double]) {
            self.name = name
            self.values = values
        }
    }

    /// A figure: its `id` is the HTML element id (tests and readers find it by that).
    public enum Figure: Sendable {
        /// Bars: a histogram or counts by category, one bar per series in each group.
        case bars(id: String, title: String, caption: String, series: [String], groups: [Group])
        /// Lines over steps of `xLabel` (seconds, for throughput over time).
        case series(id: String, title: String, caption: String, xLabel: String, lines: [Line])
        /// A table.
        case table(id: String, title: String, caption: String, header: [String], rows: [[String]])

        /// The element id.
        public var id: String {
            switch self {
            case .bars(let id, _, _, _, _), .series(let id, _, _, _, _), .table(let id, _, _, _, _): id
            }
        }
    }

    /// The page title.
    public var title: String
    /// One line under it (the options that reproduce the run).
    public var subtitle: String
    /// The overall verdict.
    public var passed: Bool
    /// Every check.
    public var verdicts: [Verdict] = []
    /// Headline figures as label and value ("throughput", "116.2 operations/s").
    public var facts: [(label: String, value: String)] = []
    /// The figures, in order.
    public var figures: [Figure] = []

    /// An empty page.
    public init(title: String, subtitle: String, passed: Bool) {
        self.title = title
        self.subtitle = subtitle
        self.passed = passed
    }
}
