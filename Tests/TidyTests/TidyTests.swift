import Foundation
import Testing

@Suite("Tidy: the ban list and the import table")
struct TidyTests {
    @Test("the repository passes every tidy rule")
    func repositoryIsTidy() {
        let files = Tidy.sourceFiles()
        #expect(files.count > 20, "tidy found too few files; is the root right? \(Tidy.root.path)")
        var violations: [Tidy.Violation] = []
        for file in files {
            violations += Tidy.check(module: file.module, file: file.path, text: file.text)
        }
        #expect(violations.isEmpty, "\(violations.map(\.description).joined(separator: "\n"))")
    }

    @Test("a deliberately bad file fails every rule (the checker is alive)")
    func badFileIsCaught() {
        let bad = """
            import CloakCRDT
            let x = try! decode()
            print("hello")
            let now = Date()
            let id = UUID()
            let n = Int.random(in: 0..<3)
            if key.copyBytes() == other { }
            if commitment == expected { }
            let clock = ContinuousClock()
            try await Task.sleep(for: .seconds(1))
            Thread { work() }.start()
            let queue = DispatchQueue(label: "x")
            """
        let rules = Tidy.check(module: "CloakServer", file: "Sources/CloakServer/Core/Bad.swift", text: bad).map(\.rule)
        #expect(rules.contains("CloakServer may not import CloakCRDT"))
        #expect(rules.contains("try! traps on bad input"))
        #expect(rules.contains("print( outside an executable"))
        #expect(rules.contains("ambient Date() in a core"))
        #expect(rules.contains("ambient UUID() in a core"))
        #expect(rules.contains("ambient .random( in a core"))
        #expect(rules.filter { $0.hasPrefix("== on secret") }.count == 2)
        #expect(rules.contains("real clock in a core"))
        #expect(rules.contains("sleep in a core"))
        #expect(rules.filter { $0 == "thread in a core" }.count == 2)
        let sql = Tidy.check(module: "CloakClient", file: "Sources/CloakClient/Core/X.swift", text: "import GRDB").map(\.rule)
        #expect(sql.contains("SQL in the client core (use the ClientStore protocol)"))
        #expect(Tidy.check(module: "Unlisted", file: "Sources/Unlisted/X.swift", text: "").map(\.rule)
            == ["Unlisted is missing from the import table"])
    }

    @Test("adapters may use threads, clocks and SQL; the same lines in a core file are flagged")
    func adaptersAreExempt() {
        let io = "import GRDB\nlet clock = ContinuousClock()\nThread { }.start()"
        #expect(Tidy.check(module: "CloakClient", file: "Sources/CloakClient/Adapters/Store.swift", text: io).isEmpty)
        #expect(Tidy.check(module: "CloakClient", file: "Sources/CloakClient/Ledger/Store.swift", text: io).count == 3)
    }

    @Test("allowed forms pass: injected randomness, comments, opt-outs, executables")
    func allowedFormsPass() {
        let fine = """
            import CloakCrypto
            let n = Int.random(in: 0..<3, using: &rng)
            // print("in a comment")
            let ok = ConstantTime.equals(a, b)
            let count = secretCount
            """
        #expect(Tidy.check(module: "CloakProtocol", file: "Fine.swift", text: fine).isEmpty)
        #expect(Tidy.check(module: "cloak-server", file: "main.swift", text: "print(\"ok\")").isEmpty)
        #expect(Tidy.check(module: "CloakServer", file: "X.swift", text: "let d = Date() // tidy:allow wall clock adapter").isEmpty)
    }

    @Test("no Swift file is longer than 400 lines (STYLE)")
    func fileLengths() {
        let long = Tidy.sourceFiles().filter { $0.text.split(separator: "\n", omittingEmptySubsequences: false).count > 400 }
        let paths = long.map(\.path)
        #expect(paths.isEmpty)
    }
}
