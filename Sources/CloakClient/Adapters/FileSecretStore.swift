public import CloakCrypto
public import Foundation

/// A ``SecretStore`` of one file per secret in a directory only the owner can read: the
/// directory is created with mode 0700 and every file with 0600 (`FileSecretStoreTests`
/// checks the modes). Writes go to a temporary file that is fsynced and renamed, so a crash
/// leaves either the old or the new secret, never a torn one.
public struct FileSecretStore: SecretStore {
    /// The directory.
    public let directory: URL

    /// Opens (creating if needed) the directory.
    public init(directory: URL) throws(ClientError) {
        self.directory = directory
        do {
            try FileManager.default.createDirectory(
                at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: directory.path)
        } catch {
            throw .storage("cannot create the secret store directory")
        }
    }

    private func url(_ name: String) throws(ClientError) -> URL {
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
            throw .storage("invalid secret name")
        }
        return directory.appendingPathComponent(name + ".secret")
    }

    /// Reads a secret file.
    public func load(named name: String) throws(ClientError) -> SecretBytes? {
        let path = try url(name).path
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard var bytes = FileManager.default.contents(atPath: path).map(Array.init) else {
            throw .storage("cannot read secret \(name)")
        }
        defer { SecretBytes.wipe(&bytes) }
        return SecretBytes(copying: bytes)
    }

    /// Writes a secret file atomically with mode 0600.
    public func store(_ secret: SecretBytes, named name: String) throws(ClientError) {
        let target = try url(name)
        let temporary = directory.appendingPathComponent(".\(name).tmp")
        let fd = open(temporary.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw .storage("cannot write secret \(name)") }
        let written = secret.withUnsafeBytes { raw in write(fd, raw.baseAddress, raw.count) }
        let synced = fsync(fd)
        close(fd)
        guard written == secret.count, synced == 0, rename(temporary.path, target.path) == 0 else {
            unlink(temporary.path)
            throw .storage("cannot write secret \(name)")
        }
        let dirFD = open(directory.path, O_RDONLY)
        if dirFD >= 0 {
            fsync(dirFD)
            close(dirFD)
        }
    }

    /// Removes a secret file.
    public func delete(named name: String) throws(ClientError) {
        let path = try url(name).path
        if FileManager.default.fileExists(atPath: path), unlink(path) != 0 {
            throw .storage("cannot delete secret \(name)")
        }
    }
}
