/// An add-wins (observed-remove) set, Shapiro et al.'s OR-Set: every add carries a unique tag
/// (its operation id) and a remove deletes only the tags its writer had observed, so an add
/// concurrent with a remove survives. `apply` holds a remove until the adds it observed have
/// arrived, so no remove tombstones are needed.
struct AddWinsSet<Element: Hashable & Sendable>: Hashable, Sendable {
    private(set) var tags: [Element: [OperationID]] = [:]

    var isEmpty: Bool { tags.isEmpty }
    var elements: [Element] { Array(tags.keys) }

    func contains(_ element: Element) -> Bool { tags[element] != nil }

    /// The live tags of `element` (what a local remove observes).
    func liveTags(of element: Element) -> [OperationID] { tags[element] ?? [] }

    mutating func add(_ element: Element, tag: OperationID) {
        var current = tags[element] ?? []
        guard !current.contains(tag) else { return }
        current.append(tag)
        current.sort()
        tags[element] = current
    }

    mutating func remove(_ element: Element, observed: [OperationID]) {
        guard var current = tags[element] else { return }
        current.removeAll { observed.contains($0) }
        tags[element] = current.isEmpty ? nil : current
    }

    init(tags: [Element: [OperationID]] = [:]) {
        self.tags = tags
    }
}
