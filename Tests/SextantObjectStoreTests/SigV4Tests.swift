import Foundation
import SextantObjectStore
import Testing

@Suite struct SigV4Tests {
    /// AWS's published example (IAM ListUsers, "Create a signed AWS API request"),
    /// secret wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY at 2015-08-30T12:36:00Z.
    @Test func matchesAWSPublishedExample() {
        let signer = SigV4Signer(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                 region: "us-east-1", service: "iam")
        let headers = signer.sign(
            method: "GET", path: "/", query: [("Action", "ListUsers"), ("Version", "2010-05-08")],
            headers: [("Host", "iam.amazonaws.com"), ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")],
            payloadSHA256Hex: SigV4Signer.emptyPayloadSHA256, date: Date(timeIntervalSince1970: 1_440_938_160),
            includeContentHeader: false)
        let authorization = headers.first { $0.0 == "Authorization" }?.1 ?? ""
        #expect(authorization == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
            + "SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7")
    }

    @Test func encodesLikeS3() {
        #expect(SigV4Signer.encode("a b/c~d+é", slash: false) == "a%20b/c~d%2B%C3%A9")
        #expect(SigV4Signer.encode("a/b", slash: true) == "a%2Fb")
    }

    @Test func parsesLocations() throws {
        #expect(try ObjectStoreLocation(parsing: "s3://bucket/some/prefix") == .s3(bucket: "bucket", prefix: "some/prefix/"))
        #expect(try ObjectStoreLocation(parsing: "s3://bucket") == .s3(bucket: "bucket", prefix: ""))
        #expect(try ObjectStoreLocation(parsing: "file:///tmp/x") == .folder(path: "/tmp/x"))
        #expect(throws: ObjectStoreError.self) { try ObjectStoreLocation(parsing: "ftp://x") }
        #expect(throws: ObjectStoreError.self) { try ObjectStoreLocation(parsing: "s3:///nobucket") }
    }

    @Test func settingsNeverPrintSecrets() {
        let settings = S3Settings(endpoint: "http://127.0.0.1:9000", accessKeyID: "AKID", secretAccessKey: "very-secret", environment: [:])
        #expect(!"\(settings)".contains("very-secret"))
        #expect(!"\(settings)".contains("AKID"))
    }
}
