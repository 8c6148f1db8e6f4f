import Foundation

/// `Vectors/oprf-ristretto255-sha512.json`: RFC 9497 A.1.1, RFC 9380 K.3 and RFC 9496 A.2 as
/// data, found next to this source file so the tests run from any clone and directory. A
/// missing or malformed file throws, so no test can pass by running zero cases.
struct OPRFVectors: Decodable {
    struct Suite: Decodable {
        struct Vector: Decodable {
            let input: String
            let blind: String
            let blindedElement: String
            let evaluationElement: String
            let output: String

            enum CodingKeys: String, CodingKey {
                case input = "Input", blind = "Blind", blindedElement = "BlindedElement"
                case evaluationElement = "EvaluationElement", output = "Output"
            }
        }
        let identifier: String
        let mode: Int
        let groupDST: String
        let seed: String
        let keyInfo: String
        let skSm: String
        let vectors: [Vector]
    }

    struct ExpandTests: Decodable {
        struct Test: Decodable {
            let msg: String
            let lenInBytes: Int
            let uniformBytes: String

            enum CodingKeys: String, CodingKey {
                case msg, lenInBytes = "len_in_bytes", uniformBytes = "uniform_bytes"
            }
        }
        let dst: String
        let tests: [Test]

        enum CodingKeys: String, CodingKey {
            case dst = "DST", tests
        }
    }

    struct InvalidEncodings: Decodable {
        struct Group: Decodable {
            let reason: String
            let encodings: [String]
        }
        let groups: [Group]
    }

    struct ExtraEncodings: Decodable {
        let encodings: [String]
    }

    struct Valid: Decodable {
        let generator: String
    }

    let rfc9497: Suite
    let rfc9380: ExpandTests
    let rfc9496Invalid: InvalidEncodings
    let bit255Set: ExtraEncodings
    let valid: Valid

    enum CodingKeys: String, CodingKey {
        case rfc9497 = "rfc9497_a_1_1", rfc9380 = "rfc9380_k_3", rfc9496Invalid = "rfc9496_a_2"
        case bit255Set = "bit_255_set", valid
    }

    static func load() throws -> OPRFVectors {
        let url = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()
            .appendingPathComponent("Vectors")
            .appendingPathComponent("oprf-ristretto255-sha512.json")
        return try JSONDecoder().decode(OPRFVectors.self, from: Data(contentsOf: url))
    }
}
