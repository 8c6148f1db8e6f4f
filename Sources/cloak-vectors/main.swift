import ArgumentParser
import CloakProtocol
import CloakVectors
import Foundation

/// `cloak-vectors`: writes or checks `Protocol/vectors/*.json`, and writes the fuzzer's seed
/// corpus. All content comes from `ProtocolVectors` in CloakVectors, the same code
/// `VectorTests` runs, so the committed files and the tests cannot disagree.
struct CloakVectors: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cloak-vectors",
        abstract: "Regenerate, check or export Cloak's protocol test vectors.",
        subcommands: [Write.self, Check.self, Corpus.self],
        defaultSubcommand: Write.self)
}

/// Writes every vector file.
struct Write: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write the vector files (the default command).")

    @Argument(help: "Directory to write into.")
    var directory: String = "Protocol/vectors"

    func run() throws {
        let url = URL(fileURLWithPath: directory)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        for file in try ProtocolVectors.files() {
            try Data(file.contents.utf8).write(to: url.appendingPathComponent(file.name), options: .atomic)
            print("wrote \(directory)/\(file.name) (\(file.contents.utf8.count) bytes)")
        }
    }
}

/// Fails when a committed vector file differs from what the code generates.
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Exit non-zero if any vector file is stale.")

    @Argument(help: "Directory holding the committed vectors.")
    var directory: String = "Protocol/vectors"

    func run() throws {
        var stale: [String] = []
        for file in try ProtocolVectors.files() {
            let path = URL(fileURLWithPath: directory).appendingPathComponent(file.name)
            let committed = try? Data(contentsOf: path)
            if committed != Data(file.contents.utf8) { stale.append(file.name) }
        }
        guard stale.isEmpty else {
            print("stale vectors: \(stale.joined(separator: ", ")); run `swift run cloak-vectors write`")
            throw ExitCode.failure
        }
        print("all vector files are current")
    }
}

/// Writes one file per valid sample frame: the seed corpus of `Fuzz/` (scripts/fuzz).
struct Corpus: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write valid frames as a libFuzzer seed corpus.")

    @Argument(help: "Directory to write the seed files into.")
    var directory: String

    func run() throws {
        let url = URL(fileURLWithPath: directory)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        let frames = try ProtocolVectors.sampleFrames()
        for (name, frame) in frames {
            try Data(FrameCodec.encode(frame)).write(to: url.appendingPathComponent("seed-\(name)"), options: .atomic)
        }
        print("wrote \(frames.count) seed frames to \(directory)")
    }
}

CloakVectors.main()
