import CSodium

/// Chunked authenticated encryption for large payloads (attachments): libsodium's
/// `crypto_secretstream_xchacha20poly1305`. Chunks cannot be reordered, duplicated or
/// dropped without detection, and a stream that lacks its final chunk is reported as
/// truncated rather than returned as complete (ADV-43).
///
/// ```swift
/// var writer = SecretStreamWriter(key: key)
/// let header = writer.header
/// let c1 = try writer.push(part1)
/// let c2 = try writer.push(part2, isFinal: true)
///
/// var reader = try SecretStreamReader(key: key, header: header)
/// let p1 = try reader.pull(c1).plaintext
/// let p2 = try reader.pull(c2)            // p2.isFinal == true
/// try reader.finish()                     // throws .streamTruncated if no final chunk came
/// ```
public struct SecretStreamWriter: ~Copyable {
    /// Header length (sent before the first chunk).
    public static let headerByteCount = 24
    /// Bytes each chunk adds (tag byte and MAC).
    public static let chunkOverhead = 17

    private let state: UnsafeMutableRawPointer
    private var finished = false
    /// The stream header the reader needs (not secret).
    public let header: [UInt8]

    /// Starts a stream; its header comes from libsodium's randomness.
    public init(key: SymmetricKey) {
        _ = Sodium.ready
        state = UnsafeMutableRawPointer.allocate(
            byteCount: crypto_secretstream_xchacha20poly1305_statebytes(), alignment: 16)
        let statePointer = state
        header = [UInt8].filled(count: Self.headerByteCount) { out in
            key.withKeyPointer { k in
                _ = crypto_secretstream_xchacha20poly1305_init_push(
                    statePointer.assumingMemoryBound(to: crypto_secretstream_xchacha20poly1305_state.self), out, k)
            }
        }
    }

    deinit {
        sodium_memzero(state, crypto_secretstream_xchacha20poly1305_statebytes())
        state.deallocate()
    }

    /// Encrypts one chunk; mark the last one `isFinal`. Pushing after the final chunk throws.
    public mutating func push(_ chunk: [UInt8], isFinal: Bool = false) throws(CryptoError) -> [UInt8] {
        guard !finished else { throw .streamAlreadyFinished }
        finished = isFinal
        let tag = UInt8(isFinal ? crypto_secretstream_xchacha20poly1305_TAG_FINAL : crypto_secretstream_xchacha20poly1305_TAG_MESSAGE)
        let statePointer = state
        return [UInt8].filled(count: chunk.count + Self.chunkOverhead) { out in
            withBytes(chunk) { m in
                _ = crypto_secretstream_xchacha20poly1305_push(
                    statePointer.assumingMemoryBound(to: crypto_secretstream_xchacha20poly1305_state.self),
                    out, nil, m, UInt64(chunk.count), nil, 0, tag)
            }
        }
    }
}

/// The receiving side of ``SecretStreamWriter``.
public struct SecretStreamReader: ~Copyable {
    private let state: UnsafeMutableRawPointer
    private var finished = false

    /// Starts reading a stream. Throws for a header of the wrong length.
    public init(key: SymmetricKey, header: [UInt8]) throws(CryptoError) {
        try Sodium.ensure()
        guard header.count == SecretStreamWriter.headerByteCount else { throw .invalidStreamHeader }
        let statePointer = UnsafeMutableRawPointer.allocate(
            byteCount: crypto_secretstream_xchacha20poly1305_statebytes(), alignment: 16)
        let status = key.withKeyPointer { k in
            crypto_secretstream_xchacha20poly1305_init_pull(
                statePointer.assumingMemoryBound(to: crypto_secretstream_xchacha20poly1305_state.self), header, k)
        }
        guard status == 0 else {
            statePointer.deallocate()
            throw .invalidStreamHeader
        }
        state = statePointer
    }

    deinit {
        sodium_memzero(state, crypto_secretstream_xchacha20poly1305_statebytes())
        state.deallocate()
    }

    /// Decrypts the next chunk. Throws ``CryptoError/streamChunkRejected`` for a tampered,
    /// reordered or repeated chunk, and ``CryptoError/streamAlreadyFinished`` after the final one.
    public mutating func pull(_ chunk: [UInt8]) throws(CryptoError) -> (plaintext: [UInt8], isFinal: Bool) {
        guard !finished else { throw .streamAlreadyFinished }
        guard chunk.count >= SecretStreamWriter.chunkOverhead else { throw .streamChunkRejected }
        var tag: UInt8 = 0
        var status: Int32 = 0
        let statePointer = state
        let plaintext = [UInt8].filled(count: chunk.count - SecretStreamWriter.chunkOverhead) { out in
            status = crypto_secretstream_xchacha20poly1305_pull(
                statePointer.assumingMemoryBound(to: crypto_secretstream_xchacha20poly1305_state.self),
                out, nil, &tag, chunk, UInt64(chunk.count), nil, 0)
        }
        guard status == 0 else { throw .streamChunkRejected }
        let isFinal = tag == UInt8(crypto_secretstream_xchacha20poly1305_TAG_FINAL)  // tidy:allow the stream tag byte is public framing, not a MAC
        finished = isFinal
        return (plaintext, isFinal)
    }

    /// Confirms the stream ended with its final chunk; throws ``CryptoError/streamTruncated``
    /// otherwise. Call it before treating the payload as complete.
    public func finish() throws(CryptoError) {
        guard finished else { throw .streamTruncated }
    }
}

/// Whole-payload helpers over the chunked stream: `header ‖ chunk₁ ‖ … ‖ chunkₙ`, every chunk
/// `chunkSize` plaintext bytes except the last, which carries the final tag.
public enum SecretStream {
    /// Encrypts `payload` in chunks of `chunkSize` bytes.
    public static func encrypt(_ payload: [UInt8], key: SymmetricKey, chunkSize: Int = 64 * 1024) -> [UInt8] {
        precondition(chunkSize > 0, "chunk size must be positive")
        var writer = SecretStreamWriter(key: key)
        var out = writer.header
        var offset = 0
        repeat {
            let end = min(offset + chunkSize, payload.count)
            let isFinal = end == payload.count
            // `push` only throws after the final chunk, which this loop never passes.
            guard let chunk = try? writer.push(Array(payload[offset..<end]), isFinal: isFinal) else { break }
            out += chunk
            offset = end
        } while offset < payload.count
        return out
    }

    /// Decrypts what ``encrypt(_:key:chunkSize:)`` produced with the same `chunkSize`.
    public static func decrypt(_ sealed: [UInt8], key: SymmetricKey, chunkSize: Int = 64 * 1024) throws(CryptoError)
        -> [UInt8]
    {
        guard sealed.count >= SecretStreamWriter.headerByteCount else { throw .invalidStreamHeader }
        var reader = try SecretStreamReader(key: key, header: Array(sealed[..<SecretStreamWriter.headerByteCount]))
        var offset = SecretStreamWriter.headerByteCount
        var out: [UInt8] = []
        let sealedChunk = chunkSize + SecretStreamWriter.chunkOverhead
        while offset < sealed.count {
            let end = min(offset + sealedChunk, sealed.count)
            out += try reader.pull(Array(sealed[offset..<end])).plaintext
            offset = end
        }
        try reader.finish()
        return out
    }
}
