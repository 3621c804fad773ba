// Where the package, the agent binary and HAProxy are.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

enum E2EPaths {
    /// The package root, found from this file's location (Tests/EndToEndTests/Support/E2EPaths.swift).
    static let packageRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func repoFile(_ relative: String) -> URL { packageRoot.appendingPathComponent(relative) }

    /// The agent binary: $E2E_LUASPOA_BIN, else the one built with the tests.
    static func agentBinary() -> String? {
        if let env = ProcessInfo.processInfo.environment["E2E_LUASPOA_BIN"], !env.isEmpty,
           FileManager.default.isExecutableFile(atPath: env) {
            return env
        }
        return builtProduct("luaspoa")
    }

    /// A product of this package built with the tests (the examples: not what ships, so
    /// never E2E_LUASPOA_BIN's directory), then .build/debug and .build/release.
    static func builtProduct(_ name: String) -> String? {
        var candidates: [String] = []
        // The xctest executable (Linux) or bundle (macOS) lives in the bin path.
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            candidates.append(URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent(name).path)
        }
        let main = Bundle.main.bundleURL
        candidates.append(main.appendingPathComponent(name).path)
        candidates.append(main.deletingLastPathComponent().appendingPathComponent(name).path)
        for b in Bundle.allBundles where b.bundleURL.pathExtension == "xctest" {
            candidates.append(b.bundleURL.deletingLastPathComponent().appendingPathComponent(name).path)
        }
        candidates.append(repoFile(".build/debug/\(name)").path)
        candidates.append(repoFile(".build/release/\(name)").path)
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// $E2E_HAPROXY_CMD (e.g. a tools/haproxy-chroot.sh launcher running 3.2) or
    /// the haproxy on PATH / in the sbin directories.
    static func haproxyBinary() -> String? {
        if let cmd = ProcessInfo.processInfo.environment["E2E_HAPROXY_CMD"], !cmd.isEmpty { return cmd }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let dirs = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/usr/local/sbin", "/sbin"]
        return dirs.map { $0 + "/haproxy" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static func makeTempDir(_ prefix: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("luaspoa-e2e-\(prefix)-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }
}
