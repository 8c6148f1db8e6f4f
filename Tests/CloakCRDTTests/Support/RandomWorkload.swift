import CloakCRDT
import CloakTesting

/// Seeded random editing by several devices of one conversation, with partial syncs in
/// between (so operations depend on other devices' operations), for property tests.
struct RandomWorkload {
    var devices: [Device]
    /// Every operation each device generated, in generation order.
    var generated: [[CRDTOperation]]
    var rng: SeededRandom
    private static let alphabet = Array("abcdefgh ijk.éü中👍".unicodeScalars)

    init(devices count: Int, seed: UInt64) {
        devices = (0..<count).map { Device(UInt64($0 + 1)) }
        generated = Array(repeating: [], count: count)
        rng = SeededRandom(seed: seed)
    }

    var allOperations: [CRDTOperation] { generated.flatMap { $0 } }

    mutating func run(steps: Int) throws {
        for _ in 0..<steps {
            let device = Int.random(in: 0..<devices.count, using: &rng)
            if Int.random(in: 0..<10, using: &rng) == 0 {
                partialSync(into: device)
            } else if let ops = try randomEdit(on: device) {
                generated[device].append(contentsOf: ops)
            }
        }
    }

    /// Delivers a random subset of other devices' operations, shuffled, some twice.
    mutating func partialSync(into device: Int) {
        var batch: [CRDTOperation] = []
        for (source, ops) in generated.enumerated() where source != device {
            for op in ops where Int.random(in: 0..<3, using: &rng) > 0 {
                batch.append(op)
                if Int.random(in: 0..<8, using: &rng) == 0 { batch.append(op) }
            }
        }
        _ = devices[device].doc.apply(batch.shuffled(seed: &rng), physicalMillis: devices[device].tick())
    }

    /// Delivers everything to every device: shuffled, with duplicates, in random batches.
    mutating func deliverAll() {
        let everything = allOperations
        for device in devices.indices {
            var queue = everything + everything.filter { _ in Int.random(in: 0..<5, using: &rng) == 0 }
            queue.shuffle(using: &rng)
            while !queue.isEmpty {
                let size = min(queue.count, Int.random(in: 1...40, using: &rng))
                let batch = Array(queue.suffix(size))
                queue.removeLast(size)
                _ = devices[device].doc.apply(batch, physicalMillis: devices[device].tick())
            }
        }
    }

    private mutating func randomText() -> String {
        var scalars = String.UnicodeScalarView()
        for _ in 0..<Int.random(in: 1...6, using: &rng) {
            scalars.append(Self.alphabet[Int.random(in: 0..<Self.alphabet.count, using: &rng)])
        }
        return String(scalars)
    }

    private mutating func randomMessage(_ doc: ConversationDocument) -> MessageID? {
        let path = doc.activePath()
        guard !path.isEmpty else { return nil }
        if Int.random(in: 0..<4, using: &rng) == 0 {
            let siblings = doc.children(of: doc.message(path[Int.random(in: 0..<path.count, using: &rng)])?.parent)
            return siblings.isEmpty ? nil : siblings[Int.random(in: 0..<siblings.count, using: &rng)]
        }
        return path[Int.random(in: 0..<path.count, using: &rng)]
    }

    private mutating func randomEdit(on index: Int) throws -> [CRDTOperation]? {
        var device = devices[index]
        defer { devices[index] = device }
        let now = device.tick()
        let roll = Int.random(in: 0..<100, using: &rng)
        guard let target = randomMessage(device.doc), roll >= 12 else {
            let parent = device.doc.activePath().last
            let role: MessageRole = Int.random(in: 0..<2, using: &rng) == 0 ? .user : .assistant
            return [
                try device.doc.createMessage(
                    parent: parent, role: role, text: randomText(), replica: &device.replica, physicalMillis: now)
            ]
        }
        let length = device.doc.textLength(of: target) ?? 0
        switch roll {
        case 12..<40:
            return [try device.doc.appendText(randomText(), to: target, replica: &device.replica, physicalMillis: now)]
        case 40..<60:
            let position = Int.random(in: 0...length, using: &rng)
            return [
                try device.doc.insertText(
                    randomText(), into: target, at: position, replica: &device.replica, physicalMillis: now)
            ]
        case 60..<70 where length > 0:
            let start = Int.random(in: 0..<length, using: &rng)
            let end = min(length, start + Int.random(in: 1...4, using: &rng))
            return [
                try device.doc.deleteText(in: target, range: start..<end, replica: &device.replica, physicalMillis: now)
            ]
        case 70..<74:
            return [try device.doc.deleteMessage(target, replica: &device.replica, physicalMillis: now)]
        case 74..<80:
            return try device.doc.branch(
                from: target, role: .assistant, text: randomText(), replica: &device.replica, physicalMillis: now)
        case 80..<84:
            return [try device.doc.selectBranch(target, replica: &device.replica, physicalMillis: now)]
        case 84..<92:
            return try react(&device, target, now)
        case 92..<97:
            return [try randomMetadata(&device, now)]
        default:
            let upTo = device.doc.message(target)?.created ?? .zero
            return [try device.doc.markRead(upTo: upTo, replica: &device.replica, physicalMillis: now)]
        }
    }

    private mutating func react(_ device: inout Device, _ target: MessageID, _ now: UInt64) throws -> [CRDTOperation] {
        let reaction = Reaction(
            emoji: ["👍", "❤️", "😂"][Int.random(in: 0..<3, using: &rng)], reactor: [UInt8(rng.next() % 3)])
        if device.doc.message(target)?.reactions.contains(reaction) == true {
            return [
                try device.doc.removeReaction(reaction, from: target, replica: &device.replica, physicalMillis: now)
            ]
        }
        return [try device.doc.addReaction(reaction, to: target, replica: &device.replica, physicalMillis: now)]
    }

    private mutating func randomMetadata(_ device: inout Device, _ now: UInt64) throws -> CRDTOperation {
        switch Int.random(in: 0..<4, using: &rng) {
        case 0: return try device.doc.setTitle(randomText(), replica: &device.replica, physicalMillis: now)
        case 1:
            return try device.doc.setMetadata(
                .archived, to: .flag(rng.next() % 2 == 0), replica: &device.replica, physicalMillis: now)
        case 2:
            return try device.doc.setMetadata(
                .custom("k\(rng.next() % 3)"), to: .text(randomText()), replica: &device.replica, physicalMillis: now)
        default:
            return try device.doc.setMetadata(.pinned, to: .flag(true), replica: &device.replica, physicalMillis: now)
        }
    }
}
