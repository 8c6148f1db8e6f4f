public import GRDB
import GRDBSQLite

/// A value bound to a prepared statement without copying it first.
public enum InPlaceValue {
    /// A BLOB read straight from the array's storage.
    case blob([UInt8])
    /// An INTEGER.
    case integer(Int64)
    /// A BLOB of up to 32 bytes held in the value itself (identifiers and digests), so
    /// binding one needs no array.
    case small(SmallBlob)
}

/// Up to 32 bytes stored inline, for ``InPlaceValue/small(_:)``.
public struct SmallBlob {
    // A homogeneous tuple is contiguous: its memory is the bytes in order.
    fileprivate var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    fileprivate let count: Int

    /// Copies `bytes`, which must be at most 32 bytes long.
    public init(_ bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count <= 32, "SmallBlob holds at most 32 bytes, got \(bytes.count)")
        count = bytes.count
        withUnsafeMutableBytes(of: &words) { $0.copyMemory(from: bytes) }
    }
}

extension Statement {
    /// Binds `values` to the statement's parameters 1…n in place and runs it to completion,
    /// inside the caller's open transaction. Returns the number of rows changed.
    ///
    /// GRDB's `execute(arguments:)` wants every blob as a fresh `Data`: on the hot inserts (the
    /// server's group commit, a client admitting change sets) those conversions copied each
    /// change set's bytes once more and were a third of the insert. Here SQLite reads the
    /// arrays' storage (or a small blob's words) during the step (`SQLITE_STATIC`) while the
    /// closures keep it alive, and the statement is reset before they return, so it never
    /// holds a dangling pointer.
    ///
    /// The step bypasses GRDB's bookkeeping, so this checks what GRDB would: the values match
    /// the parameters (a mismatch is a programming error and traps), every bind succeeds, and a
    /// transaction is open (one SQLite rolled back after an error must not turn the rest of the
    /// caller's work into autocommits). GRDB's transaction observers do not see these rows;
    /// neither store uses observers.
    @discardableResult
    public func executeInPlace(_ values: [InPlaceValue]) throws -> Int {
        let statement = sqliteStatement
        precondition(
            Int(sqlite3_bind_parameter_count(statement)) == values.count,
            "executeInPlace: \(values.count) values for \(sqlite3_bind_parameter_count(statement)) parameters")
        let connection = sqlite3_db_handle(statement)
        guard sqlite3_get_autocommit(connection) == 0 else {
            throw DatabaseError(resultCode: .SQLITE_MISUSE, message: "executeInPlace outside a transaction")
        }
        sqlite3_reset(statement)
        let code = Self.bind(values, from: 0, to: statement)
        guard code == SQLITE_DONE else {
            throw DatabaseError(resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(connection)))
        }
        return Int(sqlite3_changes(connection))
    }

    /// Binds `values[index...]` one level of closure each, then steps and resets inside the
    /// innermost one. Returns the step's result code, or the first failed bind's.
    private static func bind(_ values: [InPlaceValue], from index: Int, to statement: SQLiteStatement) -> Int32 {
        guard index < values.count else {
            let code = sqlite3_step(statement)
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
            return code
        }
        let parameter = Int32(index + 1)
        let bound: Int32
        switch values[index] {
        case .integer(let value):
            bound = sqlite3_bind_int64(statement, parameter, value)
            guard bound == SQLITE_OK else { return Self.abandon(statement, bound) }
            return bind(values, from: index + 1, to: statement)
        case .blob(let bytes):
            return bytes.withUnsafeBytes { bindBlob($0, values, index, statement) }
        case .small(let blob):
            return withUnsafeBytes(of: blob.words) { words in
                bindBlob(UnsafeRawBufferPointer(rebasing: words[..<blob.count]), values, index, statement)
            }
        }
    }

    /// Binds `buffer` as parameter `index + 1`, then the rest inside (while `buffer` is alive).
    private static func bindBlob(
        _ buffer: UnsafeRawBufferPointer, _ values: [InPlaceValue], _ index: Int, _ statement: SQLiteStatement
    ) -> Int32 {
        // A zero-length blob still needs a non-null pointer, or SQLite binds NULL.
        let address = buffer.baseAddress ?? UnsafeRawPointer(bitPattern: 1)
        let bound = sqlite3_bind_blob(statement, Int32(index + 1), address, Int32(buffer.count), nil)
        guard bound == SQLITE_OK else { return Self.abandon(statement, bound) }
        return bind(values, from: index + 1, to: statement)
    }

    /// Clears what was bound so far (it may point into storage about to be released).
    private static func abandon(_ statement: SQLiteStatement, _ code: Int32) -> Int32 {
        sqlite3_clear_bindings(statement)
        return code
    }
}
