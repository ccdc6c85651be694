import NIOCore
import NIOSSL

/// TLS between Sextant's parts: TLS 1.3 only (every part is ours, so nothing
/// older needs serving), a certificate chain and key from PEM files on the
/// server, and on the client a CA file or the system's trust store, always
/// verifying the server's certificate and name.
public enum SextantTLS {
    public struct Error: Swift.Error, Sendable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// The server side: certificate chain and private key, both PEM.
    public static func serverConfiguration(certificatePath: String, keyPath: String) throws -> TLSConfiguration {
        let chain: [NIOSSLCertificate]
        do { chain = try NIOSSLCertificate.fromPEMFile(certificatePath) } catch {
            throw Error(message: "cannot read the TLS certificate \(certificatePath): \(error)")
        }
        guard !chain.isEmpty else { throw Error(message: "\(certificatePath) holds no PEM certificate") }
        let key: NIOSSLPrivateKey
        do { key = try NIOSSLPrivateKey(file: keyPath, format: .pem) } catch {
            throw Error(message: "cannot read the TLS private key \(keyPath): \(error)")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv13
        return configuration
    }

    public static func serverContext(certificatePath: String, keyPath: String) throws -> NIOSSLContext {
        try NIOSSLContext(configuration: serverConfiguration(certificatePath: certificatePath, keyPath: keyPath))
    }

    /// The client side: trust `caFile` (PEM) if given, else the system's store.
    public static func clientContext(caFile: String?) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv13
        configuration.certificateVerification = .fullVerification
        if let caFile {
            do { configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile)) } catch {
                throw Error(message: "cannot read the CA file \(caFile): \(error)")
            }
        }
        return try NIOSSLContext(configuration: configuration)
    }
}
