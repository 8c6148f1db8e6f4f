import CloakProtocol
import Foundation
import GRDB

extension SQLiteServerStore {
    /// A description without bound values or statement text (which may hold stored bytes).
    static func describe(_ error: any Error) -> String {
        if let error = error as? DatabaseError {
            let meaning: String =
                switch error.resultCode {
                case .SQLITE_CANTOPEN: "cannot open the file"
                case .SQLITE_NOTADB: "the file is not an SQLite database"
                case .SQLITE_CORRUPT: "the file is damaged"
                case .SQLITE_FULL: "the disk is full"
                case .SQLITE_READONLY: "the file is read-only"
                case .SQLITE_PERM, .SQLITE_AUTH: "permission denied"
                case .SQLITE_BUSY, .SQLITE_LOCKED: "another process holds a lock"
                case .SQLITE_IOERR: "an I/O error"
                default: "SQLite error \(error.resultCode.rawValue)"
                }
            return meaning
        }
        // Only a damaged stored id or hash: the message names the field and its length.
        if let error = error as? ProtocolError { return "damaged row: \(error)" }
        // A file-system error (Foundation's sentence names the file), not the type's name.
        if let error = error as? CocoaError { return error.localizedDescription }
        return String(describing: type(of: error))
    }
}
