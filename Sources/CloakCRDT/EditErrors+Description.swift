extension ConversationEditError: CustomStringConvertible {
    /// A sentence naming what the edit referred to.
    public var description: String {
        switch self {
        case .unknownMessage(let id): "message \(id) is not in this conversation"
        case .positionOutOfRange: "a text position is past the end of the message"
        case .emptyText: "there is no text to insert"
        case .textTooLong: "the text is longer than \(DecodingLimits.textBytesMax >> 20) MiB"
        case .counterExhausted: "this device has used up its operation counter in this conversation"
        case .replicaLimitReached: "the conversation already has the most devices that may write in it"
        case .reactionNotPresent: "there is no such reaction to remove"
        }
    }
}

extension LibraryEditError: CustomStringConvertible {
    /// A sentence naming what the edit referred to.
    public var description: String {
        switch self {
        case .notInLibrary: "the conversation or folder is not in the account library"
        case .counterExhausted: "this device has used up its operation counter in the account library"
        }
    }
}
