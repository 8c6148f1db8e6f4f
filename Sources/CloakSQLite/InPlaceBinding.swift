public import GRDB
import GRDBSQLite

/// A value bound to a prepared statement without copying it first.
public enum InPlaceValue {
    /// A BLOB read straight from the array's storage.
    case blob([UInt8])
    /// An INTEGER.
    case integer(Int64)
}

extension Statement {
    /// Binds `values` to the statement's parameters 1…n in place and runs it to completion.
    ///
    /// GRDB's `execute(arguments:)` wants every blob as a fresh `Data` and has SQLite copy it
    /// again; on the hot inserts (the server's group commit, a client admitting change sets)
    /// those copies and conversions were a third of the insert. Here SQLite reads the arrays'
    /// storage during the step (`SQLITE_STATIC`), while the closures keep it alive, and the
    /// statement is reset before they return so it never holds a dangling pointer. Returns the
    /// number of rows changed.
    @discardableResult
    public func executeInPlace(_ values: [InPlaceValue]) throws -> Int {
        let statement = sqliteStatement
        sqlite3_reset(statement)
        let code = Self.bind(values, from: 0, to: statement)
        guard code == SQLITE_DONE else { throw DatabaseError(resultCode: ResultCode(rawValue: code)) }
        return Int(sqlite3_changes(sqlite3_db_handle(statement)))
    }

    /// Binds `values[index...]` one level of closure each, then steps and resets inside the
    /// innermost one.
    private static func bind(_ values: [InPlaceValue], from index: Int, to statement: SQLiteStatement) -> Int32 {
        guard index < values.count else {
            let code = sqlite3_step(statement)
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
            return code
        }
        let parameter = Int32(index + 1)
        switch values[index] {
        case .integer(let value):
            sqlite3_bind_int64(statement, parameter, value)
            return bind(values, from: index + 1, to: statement)
        case .blob(let bytes):
            return bytes.withUnsafeBytes { buffer in
                // A zero-length blob still needs a non-null pointer, or SQLite binds NULL.
                let address = buffer.baseAddress ?? UnsafeRawPointer(bitPattern: 1)
                sqlite3_bind_blob(statement, parameter, address, Int32(buffer.count), nil)
                return bind(values, from: index + 1, to: statement)
            }
        }
    }
}
