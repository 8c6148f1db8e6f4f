import CloakClient
import CloakCrypto
import CloakProtocol

// Exhaustive switches, so that a new error case does not compile until it is numbered here;
// the test then fails until it has a sample (ErrorSentenceTests).
extension ErrorSentenceTests {
    static func index(_ error: ClientError) -> Int {
        switch error {
        case .storage: 0
        case .noAccount: 1
        case .alreadyInitialized: 2
        case .server: 3
        case .notConnected: 4
        case .timeout: 5
        case .unknownConversation: 6
        case .invalidEdit: 7
        case .deviceLog: 8
        case .pairing: 9
        case .pairingReused: 10
        case .pairingNotCompleted: 11
        case .recoveryWords: 12
        case .wrongRecoverySecret: 13
        case .noRecoveryKey: 14
        case .crypto: 15
        case .unknownDevice: 16
        case .removedFromAccount: 17
        case .missingEpochKey: 18
        case .linkDeclined: 19
        case .weakPassphrase: 20
        case .recoveryAlreadySet: 21
        case .recoveryLocked: 22
        case .recoveryUnavailable: 23
        case .recoveryInterrupted: 24
        case .assistantInvitation: 25
        case .unknownAssistant: 26
        case .assistantNotGranted: 27
        case .notPermitted: 28
        }
    }

    static func index(_ error: ProtocolError) -> Int {
        switch error {
        case .malformedFrame: 0
        case .frameTooLarge: 1
        case .unsupportedVersion: 2
        case .notAuthenticated: 3
        case .authFailed: 4
        case .unknownAccount: 5
        case .deviceNotActive: 6
        case .badSignature: 7
        case .invalidField: 8
        case .wrongAuthor: 9
        case .gap: 10
        case .fork: 11
        case .tooManyChangeSets: 12
        case .changeSetTooLarge: 13
        case .rateLimited: 14
        case .quotaExceeded: 15
        case .tooManyConnections: 16
        case .handshakeTimeout: 17
        case .idleTimeout: 18
        case .slowConsumer: 19
        case .accountExists: 20
        case .invalidDeviceLog: 21
        case .deviceLogConflict: 22
        case .notFound: 23
        case .unexpectedFrame: 24
        case .shuttingDown: 25
        case .internalError: 26
        case .staleSnapshot: 27
        case .staleDeviceLog: 28
        case .cursorMismatch: 29
        case .staleCutoffs: 30
        case .accountBlocked: 31
        case .recoveryLocked: 32
        case .recoveryUnavailable: 33
        case .outOfScope: 34
        case .notPermitted: 35
        case .grantExpired: 36
        }
    }

    static func index(_ error: CryptoError) -> Int {
        switch error {
        case .sodiumUnavailable: 0
        case .invalidKeyLength: 1
        case .invalidNonceLength: 2
        case .invalidSeedLength: 3
        case .invalidSaltLength: 4
        case .invalidHashLength: 5
        case .ciphertextTooShort: 6
        case .authenticationFailed: 7
        case .commitmentMismatch: 8
        case .invalidSignature: 9
        case .invalidPublicKey: 10
        case .lowOrderPublicKey: 11
        case .sealedBoxOpenFailed: 12
        case .invalidPadding: 13
        case .paddingTooLarge: 14
        case .passwordParametersBelowFloor: 15
        case .passwordParametersAboveCeiling: 16
        case .unsupportedPasswordAlgorithm: 17
        case .passwordHashingFailed: 18
        case .streamChunkRejected: 19
        case .streamTruncated: 20
        case .streamAlreadyFinished: 21
        case .invalidStreamHeader: 22
        case .malformedEncoding: 23
        case .invalidElementLength: 24
        case .invalidElementEncoding: 25
        case .identityElement: 26
        case .inputTooLong: 27
        case .invalidDomainSeparationTagLength: 28
        case .invalidExpandLength: 29
        case .zeroScalar: 30
        case .hashingFailed: 31
        }
    }
}
