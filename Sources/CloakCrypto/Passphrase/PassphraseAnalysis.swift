/// The dynamic program behind ``PassphraseStrength``: for each prefix of the passphrase, the
/// cheapest cover by matches, where a match's cost is log2 of the guesses it stands for. The
/// method, and why each cost is what it is, is documented on ``PassphraseStrength``.
struct PassphraseAnalysis {
    enum Kind {
        case commonPassword, word, pattern, bruteForce, separator
    }

    struct Match {
        let end: Int
        let bits: Double
        let kind: Kind
    }

    /// log2(7776): one word of the EFF long list.
    static let wordBits = logBase2(7776)
    /// The longest run of letters charged as a single unknown word.
    static let lettersPerWordMax = 8
    /// The longest span checked for a repeat of earlier text.
    static let repeatLengthMax = 32
    static let separators: Set<Character> = [" ", "-", "_", ".", ",", "+", "/"]
    static let yearBits = logBase2(140)
    static let dateBits = logBase2(31 * 12 * 140)

    let original: [Character]
    /// Lowercased characters, used for every match.
    let lower: [Character]
    /// The passphrase's first separator: repeating it (between words) is free.
    let firstSeparator: Character?
    /// The caller's context words, lowercased, each as rank 1.
    let contextRanks: [String: Int]
    /// The longest list or context entry: no dictionary match is longer.
    let longestEntry: Int
    /// Start of the first occurrence of each short substring, for repeat matches.
    let firstStart: [String: Int]

    private(set) var bits = 0.0
    private(set) var weakness = PassphraseStrength.Reason.tooShort

    init(_ characters: [Character], contextWords: [String]) {
        original = characters
        // A few characters lowercase to more than one (rare ligatures); those stay as typed.
        lower = characters.map { c in
            let folded = c.lowercased()
            return folded.count == 1 ? Character(folded) : c
        }
        firstSeparator = characters.first { Self.separators.contains($0) }
        contextRanks = Dictionary(
            contextWords.map { ($0.lowercased(), 1) }.filter { !$0.0.isEmpty }, uniquingKeysWith: { first, _ in first })
        longestEntry = Swift.max(PassphraseLists.longestEntry, contextRanks.keys.map(\.count).max() ?? 0)
        var firstStart: [String: Int] = [:]
        for start in lower.indices {
            for length in 3...Self.repeatLengthMax where start + length <= lower.count {
                let key = String(lower[start..<start + length])
                if firstStart[key] == nil { firstStart[key] = start }
            }
        }
        self.firstStart = firstStart
        run()
    }

    private mutating func run() {
        let n = original.count
        var best = [Double](repeating: .infinity, count: n + 1)
        var back = [(start: Int, kind: Kind)](repeating: (0, .bruteForce), count: n + 1)
        best[0] = 0
        for start in 0..<n {
            for match in matches(at: start) where best[start] + match.bits < best[match.end] {
                best[match.end] = best[start] + match.bits
                back[match.end] = (start, match.kind)
            }
        }
        bits = best[n]
        var covered: [Kind: Int] = [:]
        var end = n
        while end > 0 {
            let step = back[end]
            covered[step.kind, default: 0] += end - step.start
            end = step.start
        }
        // Ties go to the weakness a user can most easily fix.
        let order: [(Kind, PassphraseStrength.Reason)] = [
            (.commonPassword, .commonPassword), (.pattern, .predictablePattern), (.word, .tooFewWords),
            (.bruteForce, .tooShort),
        ]
        var most = 0
        for (kind, reason) in order where covered[kind, default: 0] > most {
            most = covered[kind, default: 0]
            weakness = reason
        }
    }

    /// Every match that starts at `start`; brute force over one character always applies, so
    /// the program always reaches the end.
    private func matches(at start: Int) -> [Match] {
        let single: Kind = Self.separators.contains(original[start]) ? .separator : .bruteForce
        var found = [Match(end: start + 1, bits: bruteForceBits(start), kind: single)]
        found += dictionaryMatches(at: start)
        found += unknownWordMatches(at: start)
        found += patternMatches(at: start)
        return found
    }

    private func bruteForceBits(_ index: Int) -> Double {
        let c = original[index]
        if Self.separators.contains(c) { return c == firstSeparator ? 0 : logBase2(33) }
        if c.isASCII, c.isLowercase { return logBase2(26) }
        if c.isASCII, c.isUppercase { return logBase2(52) }
        if c.isASCII, c.isNumber { return logBase2(10) }
        if c.isASCII { return logBase2(33) }
        return logBase2(100)
    }

    private func dictionaryMatches(at start: Int) -> [Match] {
        var found: [Match] = []
        let longest = Swift.min(lower.count, start + longestEntry)
        guard start < longest else { return [] }
        for end in (start + 1)...longest {
            let span = lower[start..<end]
            for (variant, substitutions) in Self.unleetVariants(span) {
                let extra = Double(substitutions) + caseBits(start, end)
                if let rank = PassphraseLists.commonPasswordRanks[variant] {
                    found.append(Match(end: end, bits: logBase2(Double(rank + 1)) + extra, kind: .commonPassword))
                }
                let ranks = [PassphraseLists.commonWordRanks[variant], contextRanks[variant]].compactMap { $0 }
                if let rank = ranks.min() {
                    found.append(Match(end: end, bits: logBase2(Double(rank + 1)) + extra, kind: .word))
                }
            }
        }
        return found
    }

    /// The span as typed, and with l33t substitutions undone (`1` read once as `i`, once as
    /// `l`), each with its number of substitutions.
    static func unleetVariants(_ span: ArraySlice<Character>) -> [(String, Int)] {
        var variants = [(String(span), 0)]
        let substituted = span.filter { PassphraseLists.leet[$0] != nil }.count
        guard substituted > 0 else { return variants }
        for one: Character in ["i", "l"] {
            let text = String(span.map { $0 == "1" ? one : (PassphraseLists.leet[$0] ?? $0) })
            variants.append((text, substituted))
        }
        return variants
    }

    private func unknownWordMatches(at start: Int) -> [Match] {
        var found: [Match] = []
        var end = start
        while end < original.count, end - start < Self.lettersPerWordMax, Self.isASCIILetter(original[end]) {
            end += 1
            let letters = Double(end - start) * logBase2(26)
            found.append(Match(end: end, bits: Swift.min(letters, Self.wordBits) + caseBits(start, end), kind: .word))
        }
        return found
    }

    private func patternMatches(at start: Int) -> [Match] {
        var found: [Match] = []
        // Runs: each kind is extended from `start` as far as it goes, and every prefix long
        // enough to count is a candidate.
        for run in [repeatRun(at: start), sequenceRun(at: start), keyboardRun(at: start)]
        where run.end - start >= run.minimum {
            for end in (start + run.minimum)...run.end {
                let bits = logBase2(run.starts * Double(end - start) * run.factor) + caseBits(start, end)
                found.append(Match(end: end, bits: bits, kind: .pattern))
            }
        }
        let longest = Swift.min(lower.count, start + Self.repeatLengthMax)
        guard start + 3 <= longest else { return found }
        for end in (start + 3)...longest {
            let span = Array(lower[start..<end])
            if let first = firstStart[String(span)], first + span.count <= start {
                // A copy of earlier text: the attacker picks where it starts and how long it is.
                found.append(Match(end: end, bits: logBase2(Double(start * span.count)), kind: .pattern))
            }
            if span.count <= 10, let bits = Self.digitPatternBits(span) {
                found.append(Match(end: end, bits: bits, kind: .pattern))
            }
        }
        return found
    }

    /// A run found from some start: where it ends, and its guess count as starting choices ×
    /// length × a direction factor; shorter than `minimum` it does not count.
    struct Run {
        let end: Int
        let starts: Double
        let factor: Double
        let minimum: Int
    }

    /// One character repeated: the character, then the length.
    private func repeatRun(at start: Int) -> Run {
        var end = start + 1
        while end < lower.count, lower[end] == lower[start] { end += 1 }
        return Run(end: end, starts: Self.alphabetSize(lower[start]), factor: 1, minimum: 3)
    }

    /// Letters or digits stepping by +1 or -1 (`abcd`, `9876`): the start (4 choices when it is
    /// an obvious one), the length, and the direction.
    private func sequenceRun(at start: Int) -> Run {
        func value(_ i: Int) -> Int? {
            let c = lower[i]
            guard c.isASCII, c.isLetter || c.isNumber, let ascii = c.asciiValue else { return nil }
            return Int(ascii)
        }
        guard start + 1 < lower.count, let a = value(start), let b = value(start + 1), abs(b - a) == 1,
            lower[start].isLetter == lower[start + 1].isLetter
        else { return Run(end: start, starts: 1, factor: 1, minimum: 3) }
        var end = start + 2
        while end < lower.count, let next = value(end), let previous = value(end - 1), next - previous == b - a,
            lower[end].isLetter == lower[start].isLetter
        {
            end += 1
        }
        let starts = "az019".contains(lower[start]) ? 4 : Self.alphabetSize(lower[start])
        return Run(end: end, starts: starts, factor: b < a ? 2 : 1, minimum: 3)
    }

    /// Adjacent keys along one keyboard row, either way: the starting key (47), the direction,
    /// and the length.
    private func keyboardRun(at start: Int) -> Run {
        var best = start
        for row in PassphraseLists.keyboardRows {
            for keys in [Array(row), Array(row.reversed())] {
                guard let index = keys.firstIndex(of: lower[start]) else { continue }
                var end = start + 1
                while end < lower.count, index + end - start < keys.count, keys[index + end - start] == lower[end] {
                    end += 1
                }
                best = Swift.max(best, end)
            }
        }
        return Run(end: best, starts: 47, factor: 2, minimum: 4)
    }

    /// Years 1900–2039, and dates: 6 or 8 digits, or three numbers joined by one repeated
    /// `.`, `/` or `-` (day, month and year in any usual order; 2- or 4-digit years).
    static func digitPatternBits(_ span: [Character]) -> Double? {
        guard let first = span.first, first.isASCII, first.isNumber else { return nil }
        let dateSeparators: Set<Character> = [".", "/", "-"]
        let used = Set(span.filter { !($0.isASCII && $0.isNumber) })
        let parts: [[Int]]
        if used.isEmpty {
            let digits = span.compactMap(\.wholeNumberValue)
            switch digits.count {
            case 4: return isYear(number(digits)) ? yearBits : nil
            case 6: parts = [Array(digits[0..<2]), Array(digits[2..<4]), Array(digits[4..<6])]
            case 8 where isYear(number(Array(digits[0..<4]))):
                parts = [Array(digits[0..<4]), Array(digits[4..<6]), Array(digits[6..<8])]
            case 8: parts = [Array(digits[0..<2]), Array(digits[2..<4]), Array(digits[4..<8])]
            default: return nil
            }
        } else {
            guard used.count == 1, let separator = used.first, dateSeparators.contains(separator) else { return nil }
            parts = span.split(separator: separator, omittingEmptySubsequences: false).map {
                $0.compactMap(\.wholeNumberValue)
            }
            guard parts.count == 3, parts.allSatisfy({ (1...4).contains($0.count) }) else { return nil }
        }
        return isDate(parts) ? dateBits : nil
    }

    /// True for (day, month, year), (month, day, year) or (year, month, day).
    private static func isDate(_ parts: [[Int]]) -> Bool {
        let (a, b, c) = (parts[0], parts[1], parts[2])
        func dayMonth(_ day: [Int], _ month: [Int]) -> Bool {
            day.count <= 2 && month.count <= 2 && (1...31).contains(number(day)) && (1...12).contains(number(month))
        }
        func year(_ digits: [Int]) -> Bool { digits.count == 2 || (digits.count == 4 && isYear(number(digits))) }
        return (year(c) && (dayMonth(a, b) || dayMonth(b, a))) || (year(a) && dayMonth(c, b))
    }

    private static func isYear(_ value: Int) -> Bool { (1900...2039).contains(value) }

    private static func number(_ digits: [Int]) -> Int { digits.reduce(0) { $0 * 10 + $1 } }

    static func alphabetSize(_ c: Character) -> Double {
        if c.isASCII, c.isLetter { return 26 }
        if c.isASCII, c.isNumber { return 10 }
        return c.isASCII ? 33 : 100
    }

    static func isASCIILetter(_ c: Character) -> Bool { c.isASCII && c.isLetter }

    /// Bits for the capitalisation of `original[start..<end]`: none for all lowercase, one for
    /// a capital first letter or all capitals, else log2 of the ways to place that many capitals.
    private func caseBits(_ start: Int, _ end: Int) -> Double {
        let letters = original[start..<end].filter(\.isLetter)
        let upper = letters.filter(\.isUppercase).count
        let lowerCount = letters.count - upper
        if upper == 0 { return 0 }
        if lowerCount == 0 || (upper == 1 && original[start].isUppercase) { return 1 }
        var ways = 0.0
        var choose = 1.0
        for i in 1...Swift.min(upper, lowerCount) {
            choose = choose * Double(letters.count - i + 1) / Double(i)
            ways += choose
        }
        return logBase2(ways)
    }
}

/// Base-2 logarithm without Foundation or the C library (CloakCrypto imports neither):
/// x = m · 2^e with m in [1, 2), and ln m = 2·atanh((m − 1)/(m + 1)), whose series converges
/// fast because that ratio is below 1/3. Accurate to about 1e-12 for positive finite x.
func logBase2(_ x: Double) -> Double {
    precondition(x > 0 && x.isFinite, "log2 of a guess count")
    let m = x.significand
    let z = (m - 1) / (m + 1)
    let z2 = z * z
    var term = z
    var sum = 0.0
    for k in stride(from: 1.0, through: 39.0, by: 2.0) {
        sum += term / k
        term *= z2
    }
    let ln2 = 0.693_147_180_559_945_3
    return Double(x.exponent) + 2 * sum / ln2
}
