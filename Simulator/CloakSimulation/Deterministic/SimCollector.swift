@_spi(Simulation) import CloakClient
import CloakCRDT
import CloakProtocol

/// What a deterministic run measured for its report, beside the checks (all in virtual time):
/// how long a message took from the API call that created it to being present on each other
/// member of its account, messages created per virtual second, and how long each account took
/// to settle once the faults healed.
///
/// ```swift
/// let result = SimWorld(options: SimOptions(seed: 7)).run()
/// result.measurements.delivery.percentile(0.99)     // virtual ms
/// result.measurements.convergenceMillis             // [UInt64?], one per account
/// ```
public struct SimMeasurements: Sendable {
    /// Virtual milliseconds from creating a message to its presence on another member device.
    public internal(set) var delivery = LatencyDistribution()
    /// Messages created in each virtual second since the workload started.
    public internal(set) var created = RateSeries()
    /// Per account, virtual milliseconds from healing to the last change any of its members
    /// made visible (0: already settled when the faults healed; nil: it did not converge).
    public internal(set) var convergenceMillis: [UInt64?] = []

    /// Nothing measured.
    public init() {}
}

/// Records ``SimMeasurements`` as a run goes, from three hooks in ``SimWorld`` (a message
/// created, a device's conversations changed, the faults healed), so the world itself keeps
/// only what its checks need.
struct SimCollector {
    /// Messages each device has not shown yet: device → conversation → (message, created at).
    private var waiting: [Int: [ConversationID: [(MessageID, UInt64)]]] = [:]
    /// Per account, the virtual time of the last change on one of its members.
    private var lastChange: [Int: UInt64] = [:]
    private var healedAt: UInt64?
    /// When the workload started: the virtual clock starts at a wall-clock-like epoch, and the
    /// series counts seconds from here.
    private var workloadStart: UInt64 = 0
    private(set) var measurements = SimMeasurements()

    mutating func workloadStarted(at now: UInt64) { workloadStart = now }

    mutating func created(_ message: MessageID, in conversation: ConversationID, by author: Int, members: [Int], at now: UInt64) {
        measurements.created.record(atMillis: Double(now) - Double(workloadStart))
        for device in members where device != author {
            waiting[device, default: [:]][conversation, default: []].append((message, now))
        }
    }

    /// `device` (of `account` when it is a member) changed `conversations`; `shows` tells whether
    /// it now has a message.
    mutating func changed(
        device: Int, account: Int?, _ conversations: Set<ConversationID>, at now: UInt64,
        shows: (MessageID, ConversationID) -> Bool
    ) {
        if let account { lastChange[account] = now }
        guard var mine = waiting[device] else { return }
        for conversation in conversations {
            guard let messages = mine[conversation] else { continue }
            var still: [(MessageID, UInt64)] = []
            for (message, created) in messages {
                if shows(message, conversation) {
                    measurements.delivery.record(Double(now - created))
                } else {
                    still.append((message, created))
                }
            }
            mine[conversation] = still.isEmpty ? nil : still
        }
        waiting[device] = mine
    }

    mutating func healed(at now: UInt64) { healedAt = now }

    /// The measurements, with each account's settling time (`converged[a]` false: nil).
    mutating func finish(converged: [Bool]) -> SimMeasurements {
        let healed = healedAt ?? 0
        measurements.convergenceMillis = converged.enumerated().map { account, done in
            done ? (lastChange[account].map { $0 > healed ? $0 - healed : 0 } ?? 0) : nil
        }
        measurements.delivery.prepare()
        return measurements
    }
}

extension SimWorld {
    /// Hook: a device's API call created a message.
    func noteCreated(_ message: SimNotes.Message) {
        collector.created(
            message.id, in: message.conversation, by: message.author, members: members(of: message.account).map(\.index), at: now)
    }

    /// Hook: a device's rendered conversations changed.
    func noteChanged(_ device: SimDevice, _ conversations: Set<ConversationID>) {
        guard let engine = device.engine else { return }
        collector.changed(
            device: device.index, account: device.status == .member ? device.account : nil, conversations, at: now
        ) { message, conversation in engine.message(message, in: conversation) != nil }
    }

    /// Hook: setup is done; the workload starts.
    func noteWorkloadStarted() { collector.workloadStarted(at: now) }

    /// Hook: every fault healed; the liveness phase starts.
    func noteHealed() { collector.healed(at: now) }

    /// The run's measurements, once its checks are done.
    func measurements() -> SimMeasurements {
        let converged = (0..<options.accounts).map { account in
            let live = members(of: account)
            guard live.allSatisfy({ $0.engine?.isSynced == true }), let first = live.first?.engine else { return live.isEmpty }
            let reference = fingerprint(first)
            return live.dropFirst().allSatisfy { $0.engine.map(fingerprint) == reference }
        }
        return collector.finish(converged: converged)
    }
}
