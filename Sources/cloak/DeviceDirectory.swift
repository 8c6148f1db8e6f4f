import CloakClient
import Foundation

/// The device directory a command works on: made only by the commands that create a device,
/// and held by one `cloak` process at a time.
struct DeviceDirectory {
    /// The path as the person typed it (messages repeat it).
    let path: String
    let url: URL

    init(_ path: String) {
        self.path = path
        url = URL(fileURLWithPath: path)
    }

    /// Checks that a device lives here, before anything is created: a mistyped `--dir` must not
    /// become a new device with new keys.
    func requireDevice() throws(CLIError) {
        guard !CloakClient.deviceExists(in: url) else { return }
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory)
        let what = !exists ? "there is no device at \(path) (no such directory)"
            : isDirectory.boolValue ? "there is no device at \(path) (the directory holds no Cloak device)"
            : "\(path) is a file, not a device directory"
        throw .failed(
            "\(what): check --dir for a typo, or make one with `cloak init --dir \(path)` (a new account), "
                + "`cloak link --dir \(path)` (join an account) or `cloak recover --dir \(path)`")
    }

    /// Makes the directory (owner-only) for a command that creates a device.
    func create() throws(CLIError) {
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw .failed("cannot create the device directory \(path): check that its parent exists and is writable")
        }
    }

    /// Takes the directory's lock (`cloak.lock`, flock): two processes on one device would
    /// fight over its store. The lock lasts until the process exits.
    func lock() throws(CLIError) -> DirectoryLock {
        let lockPath = url.appendingPathComponent("cloak.lock").path
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .failed("cannot open \(lockPath): check the directory's permissions") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: lockPath, encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines)
            close(fd)
            let who = holder.flatMap(Int32.init).map { "another cloak process (pid \($0))" } ?? "another cloak process"
            throw .failed("\(who) is using the device at \(path): wait for it to finish, or stop it, then run this again")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        return DirectoryLock(fd: fd)
    }
}

/// A held directory lock (released when the process exits; kept open until then).
struct DirectoryLock {
    let fd: Int32
}
