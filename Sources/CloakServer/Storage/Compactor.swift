public import CloakProtocol
public import Logging

/// What one compaction run removed.
public struct CompactionReport: Sendable, Equatable {
    /// Accounts examined.
    public var accounts = 0
    /// Change sets whose bytes were dropped.
    public var changeSetsDropped = 0
    /// Bytes released from quotas.
    public var bytesDropped: Int64 = 0
    /// Expired pairing mailboxes deleted.
    public var mailboxesPurged = 0

    /// An empty report.
    public init() {}
}

/// `cloak-server compact`: drops the change sets that each conversation's newest snapshot
/// covers, once every active device has acknowledged a cursor past them (PROTOCOL.md §13
/// "Compaction"). Strictly past: the change set at a device's acknowledged cursor keeps its
/// bytes, so a Subscribe anchored there can still be checked and served (§20). A cover counts only where the stored change set at its seq
/// has its hash, so a snapshot can never cover change sets it did not see. Cursor and hash
/// stay (duplicates and chain checks keep answering); only the bytes go.
///
/// ```swift
/// let report = try await Compactor.run(store: store, nowMs: now, logger: logger)
/// ```
public enum Compactor {
    /// Compacts every account and purges expired mailboxes.
    public static func run(store: any ServerStore, nowMs: UInt64, logger: Logger) async throws(StoreError)
        -> CompactionReport
    {
        var report = CompactionReport()
        var after: AccountID?
        while true {
            let page = try await store.accounts(after: after, limit: 500)
            guard let last = page.last else { break }
            for account in page {
                report.accounts += 1
                let (count, bytes) = try await compact(account, store: store, logger: logger)
                report.changeSetsDropped += count
                report.bytesDropped += bytes
            }
            after = last
        }
        report.mailboxesPurged = try await store.purgeMailboxes(nowMs: nowMs)
        logger.info(
            "compaction finished",
            metadata: [
                "accounts": "\(report.accounts)", "change_sets": "\(report.changeSetsDropped)",
                "bytes": "\(report.bytesDropped)", "mailboxes": "\(report.mailboxesPurged)",
            ])
        return report
    }

    /// Compacts one account; returns change sets and bytes dropped.
    public static func compact(_ account: AccountID, store: any ServerStore, logger: Logger) async throws(StoreError)
        -> (count: Int, bytes: Int64)
    {
        let input = try await store.compactionInput(account)
        let log: DeviceLog
        do {
            log = try DeviceLog(verifying: input.deviceLog.map { bytes throws(ProtocolError) in try DeviceLogEntry(wire: bytes) })
        } catch {
            logger.error("skipping an account whose device log does not verify", metadata: ["account": "\(account)"])
            return (0, 0)
        }
        let active = log.activeDevices
        guard let acknowledged = active.map({ input.acknowledged[$0] ?? 0 }).min(), acknowledged > 0 else { return (0, 0) }
        var count = 0
        var bytes: Int64 = 0
        for record in input.newestSnapshots {
            guard let message = try? FrameCodec.parse(Cloak_V1_Snapshot.self, from: record, what: "snapshot"),
                let snapshot = try? Snapshot(message: message), snapshot.header.account == account
            else { continue }
            for cover in snapshot.header.covers where cover.seq > 0 {
                let chain = ChainKey(conversation: snapshot.header.conversation, author: cover.device)
                let position = ChainSeq(chain: chain, seq: cover.seq)
                guard try await store.changeSetRefs(account: account, [position])[position]?.hash == cover.hash else {
                    continue
                }
                let dropped = try await store.dropCovered(
                    account: account, chain: chain, throughSeq: cover.seq, belowCursor: acknowledged)
                count += dropped.count
                bytes += dropped.bytes
            }
        }
        return (count, bytes)
    }
}
