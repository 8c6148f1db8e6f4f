/// Protocol version constants. There is exactly one cipher suite per version and no
/// negotiation of algorithms, so a server cannot downgrade a client (ADV-25); a new suite
/// means a new version, which clients opt into by upgrading.
public enum ProtocolVersion {
    /// The version this implementation speaks, on the wire and inside every construction.
    public static let current: UInt32 = 1
    /// Versions a client accepts in `ServerHello.versions` (any other list is refused).
    public static let supported: Set<UInt32> = [1]
}
