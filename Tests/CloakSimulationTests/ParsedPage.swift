import Foundation

#if canImport(FoundationXML)
import FoundationXML
#endif

/// A report page parsed as XML (``HTMLReport`` writes well-formed markup, so a parse failure is
/// a bug): element counts, figures and the data their bars and lines carry.
struct ParsedPage {
    struct Element {
        let name: String
        let attributes: [String: String]
        /// The id of the figure it is inside, if any.
        let figure: String?
    }

    struct Bar: Equatable {
        let label: String
        let series: String
        let value: Double
    }

    struct ParseError: Error, CustomStringConvertible {
        let description: String
    }

    private(set) var elements: [Element] = []
    /// Every text node, concatenated.
    private(set) var text = ""

    init(_ html: String) throws {
        let collector = Collector()
        let parser = XMLParser(data: Data(html.utf8))
        parser.delegate = collector
        guard parser.parse() else {
            throw ParseError(description: "the page is not well-formed: \(parser.parserError.map { "\($0)" } ?? "unknown error")")
        }
        elements = collector.elements
        text = collector.text
    }

    func count(_ name: String) -> Int { elements.filter { $0.name == name }.count }

    /// The ids of the figures, in order.
    var figureIDs: [String] { elements.filter { $0.name == "figure" }.compactMap { $0.attributes["id"] } }

    func bars(in figure: String) -> [Bar] {
        elements.filter { $0.name == "rect" && $0.figure == figure }.compactMap { element in
            guard let label = element.attributes["data-label"], let value = element.attributes["data-value"].flatMap(Double.init)
            else { return nil }
            return Bar(label: label, series: element.attributes["data-series"] ?? "", value: value)
        }
    }

    func values(in figure: String) -> [Double] { bars(in: figure).map(\.value) }

    func labels(in figure: String) -> [String] { bars(in: figure).map(\.label) }

    func lineValues(in figure: String, series: String) -> [Double]? {
        elements.first { $0.name == "polyline" && $0.figure == figure && $0.attributes["data-series"] == series }
            .flatMap { $0.attributes["data-values"] }
            .map { $0.split(separator: ",").compactMap { Double($0) } }
    }

    /// Body rows of the figure's table.
    func rows(in figure: String) -> Int {
        elements.filter { $0.name == "tr" && $0.figure == figure }.count - 1
    }

    /// Each check row's name and verdict.
    var checks: [String: Bool] {
        var checks: [String: Bool] = [:]
        for element in elements where element.name == "tr" {
            if let name = element.attributes["data-check"] { checks[name] = element.attributes["data-passed"] == "true" }
        }
        return checks
    }

    func attribute(_ id: String, _ name: String) -> String? {
        elements.first { $0.attributes["id"] == id }?.attributes[name]
    }

    /// src, href, xlink:href, srcset, action, data or poster attributes that point anywhere
    /// but a fragment of this page.
    var externalAttributes: [String] {
        let names: Set<String> = ["src", "href", "xlink:href", "srcset", "action", "data", "poster", "background"]
        return elements.flatMap { element in
            element.attributes.filter { names.contains($0.key) && !$0.value.hasPrefix("#") }.map { "\(element.name) \($0.key)=\($0.value)" }
        }
    }

    private final class Collector: NSObject, XMLParserDelegate {
        var elements: [Element] = []
        var text = ""
        private var figures: [String?] = []

        func parser(
            _ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
            attributes: [String: String] = [:]
        ) {
            if name == "figure" { figures.append(attributes["id"]) }
            elements.append(Element(name: name, attributes: attributes, figure: figures.last ?? nil))
        }

        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            if name == "figure" { figures.removeLast() }
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }
    }
}
