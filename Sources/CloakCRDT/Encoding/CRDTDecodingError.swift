/// Why bytes could not be decoded as an operation batch, a snapshot or a replica state.
///
/// ```swift
/// do {
///     let ops = try OperationBatch.decode(bytes)
/// } catch .truncated {
///     // the change-set plaintext was cut short
/// } catch {
///     // any other failed check
/// }
/// ```
///
/// Every decoder in CloakCRDT is total: it returns a value or throws one of these, it never
/// traps, and it checks each declared length or count against the bytes that remain before
/// allocating anything for it (ADV-17). Cases name the check that failed and carry no input
/// bytes, so they are safe to log.
public enum CRDTDecodingError: Error, Hashable, Sendable {
    /// The input ended before a field was complete.
    case truncated
    /// The first bytes are not the magic of the expected kind of encoding.
    case badMagic
    /// The format version is not one this build reads.
    case unsupportedVersion(UInt8)
    /// A variable-length integer ran over 10 bytes or over 64 bits.
    case varintOverflow
    /// A declared count or length is larger than the bytes that remain could hold.
    case countExceedsRemainingBytes
    /// A declared count or length is larger than the documented limit for that field.
    case limitExceeded(DecodingLimit)
    /// A text field is not valid UTF-8.
    case invalidUTF8
    /// An operation kind tag is unknown.
    case unknownOperationKind(UInt8)
    /// An enumeration field (role, metadata field, value kind, lifecycle state) is unknown.
    case unknownEnumerationValue(UInt8)
    /// A reference that the operation kind requires (a message, a span start) is "none".
    case requiredReferenceMissing
    /// A replica index points outside the replica table of the encoding.
    case replicaIndexOutOfRange
    /// The replica table lists one replica twice or out of order.
    case replicaTableNotCanonical
    /// An operation or item covers zero counters, or its counters overflow 64 bits.
    case invalidSpan
    /// A snapshot's structure is inconsistent (a message's parent is missing, a message
    /// appears twice, text content does not match the run lengths, …).
    case inconsistentSnapshot
    /// Bytes remain after the encoded value.
    case trailingBytes
}

/// The field whose documented limit a decoder enforced (see `DecodingLimits`).
public enum DecodingLimit: Hashable, Sendable {
    /// `DecodingLimits.operationsPerBatchMax`.
    case operationsPerBatch
    /// `DecodingLimits.replicasPerEncodingMax`.
    case replicasPerEncoding
    /// `DecodingLimits.textBytesMax`.
    case textBytes
    /// `DecodingLimits.spansPerOperationMax`.
    case spansPerOperation
    /// `DecodingLimits.bytesFieldMax`.
    case bytesField
}

/// Hard limits every CloakCRDT decoder enforces before allocating (TigerBeetle's "put a limit
/// on everything"); unit last in each name.
public enum DecodingLimits {
    /// Operations in one batch (a change set's plaintext).
    public static let operationsPerBatchMax = 1 << 20
    /// Distinct replicas named in one batch or snapshot.
    public static let replicasPerEncodingMax = IdentifierLimits.replicasPerDocumentMax
    /// UTF-8 bytes of one text field (a message's initial text, one insert, one title).
    public static let textBytesMax = 64 << 20
    /// Id spans or observed tags in one operation.
    public static let spansPerOperationMax = 1 << 20
    /// Bytes of one opaque field (a reactor id, a metadata bytes value).
    public static let bytesFieldMax = 1 << 16
}
