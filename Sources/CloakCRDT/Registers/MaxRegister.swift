/// Read markers: one max-register per device. Merging takes the maximum, so a marker only
/// moves forward, whatever order the writes arrive in (a state-based G-counter's cousin,
/// Shapiro et al., "A comprehensive study of CRDTs", 2011).
struct ReadMarkers: Hashable, Sendable {
    private(set) var markers: [ReplicaID: HLCTimestamp] = [:]

    mutating func raise(_ device: ReplicaID, to value: HLCTimestamp) {
        if let current = markers[device], current >= value { return }
        markers[device] = value
    }

    init(markers: [ReplicaID: HLCTimestamp] = [:]) {
        self.markers = markers
    }
}
