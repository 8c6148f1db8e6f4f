import CloakProtocol
import Foundation

/// Builds `ChainHeads` replies (PROTOCOL.md §18 `FetchHeads`).
enum HeadsEncoder {
    /// An upper bound of one encoded head inside `ChainHeads.heads`: two 16-byte ids, a 32-byte
    /// hash and a seq varint with their tags and lengths come to 83 bytes at most. A reply of
    /// `maxHeadsPerReply` heads must fit one frame; smaller frame limits get fewer per reply.
    static let maxEncodedHeadBytes = 96

    /// The first `limit` heads; complete when the store found no more than that (it was asked
    /// for one extra).
    static func reply(_ heads: [StoredChainHead], limit: Int) -> Cloak_V1_ChainHeads {
        var reply = Cloak_V1_ChainHeads()
        reply.heads = heads.prefix(limit).map { head in
            var message = Cloak_V1_ChainHead()
            message.conversationID = head.chain.conversation.data
            message.device = head.chain.author.data
            message.seq = head.position.seq
            message.hash = head.position.hash.data
            return message
        }
        reply.complete = heads.count <= limit
        return reply
    }
}
