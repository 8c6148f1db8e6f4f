/// The small embedded lists ``PassphraseStrength`` matches against, in rank order (most common
/// first), so a match costs log2(rank + 1) bits. They are deliberately short: the estimator
/// needs only the head of each distribution, where guessing attacks start, and a phrase built
/// from rarer words is charged per word from a word-list size instead (see ``PassphraseStrength``).
enum PassphraseLists {
    /// The most common passwords, in roughly the order published password-leak studies rank
    /// them (NCSC's and SplashData's top lists and their many copies). Matched after
    /// lowercasing and undoing common l33t substitutions, so `P@ssw0rd` is `password`.
    static let commonPasswords: [String] = words("""
        123456 password 123456789 12345678 12345 qwerty 1234567 111111 1234567890 123123 abc123 1234 password1
        iloveyou 1q2w3e4r 000000 qwerty123 zaq12wsx dragon sunshine princess letmein 654321 monkey 27653
        1qaz2wsx 123321 qwertyuiop superman asdfghjkl football baseball welcome admin login master hello
        freedom whatever qazwsx trustno1 starwars shadow michael jennifer jordan hunter ranger buster soccer
        harley batman andrew tigger charlie robert thomas hockey killer george pepper daniel access love
        secret summer flower passw0rd cheese computer internet pokemon liverpool chelsea arsenal samsung
        google mustang maggie ginger hannah jessica ashley nicole matthew joshua 696969 121212 7777777
        987654321 112233 11111111 666666 555555 888888 123qwe q1w2e3r4 changeme default guest root test
        test123 temp abcdef abcd1234 aa123456 1q2w3e 159753 147258369 loveme blink182 naruto nothing
        money secret123 password123 password12 welcome1 admin123 qwerty1 iloveu princess1 babygirl lovely
        michelle tinkerbell jesus angel 123abc 1111 2000 apple orange banana chocolate cookie butterfly
        purple jordan23 liverpool1 mypassword letmein1 hello123 monkey123 dragon1 football1 baseball1
        master1 sunshine1 shadow1 superman1 starwars1 zxcvbnm asdfgh qwertyu 1234qwer 12qwaszx
        """)

    /// The most frequent English words, with the words people most often put in passwords
    /// (love, baby, angel, …) folded in near the top. A phrase made only of these is cheap.
    static let commonWords: [String] = words("""
        the of and to a in is you that it he was for on are as with his they i at be this have from or one
        had by word but not what all were we when your can said there use an each which she do how their if
        will up other about out many then them these so some her would make like him into time has look two
        more write go see number no way could people my than first water been call who oil its now find long
        down day did get come made may part love baby angel god sex life girl boy man woman dog cat king
        queen star heart happy family friend home music money dream magic light dark blue red black white
        over new sound take only little work know place year live me back give most very after thing our
        just name good sentence think say great where help through much before line right too mean old any
        same tell follow came want show also around form three small set put end does another well large
        must big even such because turn here why ask went men read need land different us move try kind
        hand picture again change off play spell air away animal house point page letter mother answer
        found study still learn should world high every near add food between own below country plant last
        school father keep tree never start city earth eye light thought head under story saw left few
        while along might close something seem next hard open example begin often together both mark
        night day sun moon fire rain snow summer winter spring autumn green gold silver sweet
        """)

    /// Keyboard rows (US QWERTY) for spotting runs such as `asdfgh` or `poiuy`.
    static let keyboardRows: [String] = ["`1234567890-=", "qwertyuiop[]\\", "asdfghjkl;'", "zxcvbnm,./"]

    /// Common l33t substitutions, undone before dictionary lookups. `1` is tried as both `i`
    /// and `l`.
    static let leet: [Character: Character] = [
        "4": "a", "@": "a", "8": "b", "3": "e", "9": "g", "1": "i", "!": "i", "|": "i", "0": "o", "$": "s",
        "5": "s", "7": "t", "+": "t", "2": "z",
    ]

    static func words(_ text: String) -> [String] {
        text.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
    }

    /// word → rank (1-based, first occurrence wins).
    static func ranks(_ list: [String]) -> [String: Int] {
        var ranks: [String: Int] = [:]
        for (index, word) in list.enumerated() where ranks[word] == nil { ranks[word] = index + 1 }
        return ranks
    }

    static let commonPasswordRanks = ranks(commonPasswords)
    static let commonWordRanks = ranks(commonWords)
    static let longestEntry = (commonPasswords + commonWords).map(\.count).max() ?? 0
}
