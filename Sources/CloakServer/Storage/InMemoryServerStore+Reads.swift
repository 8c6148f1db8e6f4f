public import CloakProtocol
import Synchronization

/// The in-memory store's synchronous reads (the simulator calls them through
/// ``InMemoryServerStore/performNow(_:)``; the async requirements forward to them).
extension InMemoryServerStore {
    /// The account's record now (the simulator reads a restored backup's device log).
    public func accountNow(_ id: AccountID) -> AccountRecord? {
        state.withLock { s in
            guard let data = s.accounts[id] else { return nil }
            return AccountRecord(
                account: id, deviceLog: data.log, headCursor: data.head, storedBytes: data.storedBytes,
                chains: data.chains, newestSnapshots: data.snapshots.mapValues(\.hash),
                snapshotBytes: data.snapshots.mapValues { Int64($0.bytes.count) }, version: data.version,
                blocked: data.blocked, recovery: data.recovery)
        }
    }

    func changeSetsNow(_ query: ChangeSetQuery) -> [StoredChangeSet] {
        state.withLock { s in
            guard let rows = s.accounts[query.account]?.rows else { return [] }
            var low = 0
            var high = rows.count
            while low < high {
                let mid = (low + high) / 2
                if rows[mid].cursor <= query.afterCursor { low = mid + 1 } else { high = mid }
            }
            var out: [StoredChangeSet] = []
            var bytes = 0
            for row in rows[low...] {
                guard row.cursor <= query.throughCursor, out.count < query.limit else { break }
                guard let body = row.bytes,
                    query.conversations.isEmpty || query.conversations.contains(row.chain.conversation)
                else { continue }
                if !out.isEmpty, bytes + body.count > query.maxBytes { break }
                bytes += body.count
                out.append(StoredChangeSet(cursor: row.cursor, bytes: body))
            }
            return out
        }
    }

    func chainRangeNow(_ id: AccountID, _ chain: ChainKey, _ seqs: ClosedRange<UInt64>, maxBytes: Int)
        -> [StoredChangeSet]
    {
        state.withLock { s in
            guard let data = s.accounts[id] else { return [] }
            var out: [StoredChangeSet] = []
            var bytes = 0
            var seq = seqs.lowerBound
            while seq <= seqs.upperBound {
                if let index = data.rowBySeq[ChainSeq(chain: chain, seq: seq)], let body = data.rows[index].bytes {
                    if !out.isEmpty, bytes + body.count > maxBytes { break }
                    bytes += body.count
                    out.append(StoredChangeSet(cursor: data.rows[index].cursor, bytes: body))
                }
                if seq == UInt64.max { break }
                seq += 1
            }
            return out
        }
    }

    func refsNow(_ id: AccountID, _ positions: [ChainSeq]) -> [ChainSeq: StoredChangeSetRef] {
        state.withLock { s in
            guard let data = s.accounts[id] else { return [:] }
            var out: [ChainSeq: StoredChangeSetRef] = [:]
            for position in positions {
                if let index = data.rowBySeq[position] {
                    let row = data.rows[index]
                    out[position] = StoredChangeSetRef(cursor: row.cursor, hash: row.hash, bytes: row.bytes)
                }
            }
            return out
        }
    }

    func anchorNow(_ id: AccountID, cursor: UInt64) -> CursorAnchor {
        state.withLock { s in
            guard let data = s.accounts[id] else { return CursorAnchor(headCursor: 0, hash: nil) }
            return CursorAnchor(headCursor: data.head, hash: data.rowIndex(cursor: cursor).map { data.rows[$0].hash })
        }
    }

    func headsNow(_ id: AccountID, after: ChainKey?, limit: Int) -> [StoredChainHead] {
        state.withLock { s in
            let chains = (s.accounts[id]?.chains ?? [:]).filter { key, _ in after.map { $0 < key } ?? true }
            return chains.sorted { $0.key < $1.key }.prefix(limit).map { StoredChainHead(chain: $0.key, position: $0.value) }
        }
    }

    func snapshotsNow(_ id: AccountID, _ conversations: [ConversationID]) -> [[UInt8]] {
        state.withLock { s in
            guard let data = s.accounts[id] else { return [] }
            let wanted = Set(conversations)
            return data.snapshots.filter { wanted.isEmpty || wanted.contains($0.key) }.sorted { $0.key < $1.key }
                .map(\.value.bytes)
        }
    }

    func recoveryNow(_ lookup: RecoveryLookup) -> RecoveryRecord? {
        state.withLock { s in
            switch lookup {
            case .account(let id): return s.accounts[id]?.recovery
            case .recoveryKey(let key): return s.recoveryKeys[key].flatMap { s.accounts[$0]?.recovery }
            }
        }
    }
}
