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

    /// The agent binary: $E2E_LUASPOA_BIN, next to the running test bundle (any
    /// --scratch-path), then .build/debug and .build/release of the package.
    static func agentBinary() -> String? {
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["E2E_LUASPOA_BIN"], !env.isEmpty {
            candidates.append(env)
        }
        // The xctest executable (Linux) or bundle (macOS) lives in the bin path.
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            candidates.append(URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("luaspoa").path)
        }
        let main = Bundle.main.bundleURL
        candidates.append(main.appendingPathComponent("luaspoa").path)
        candidates.append(main.deletingLastPathComponent().appendingPathComponent("luaspoa").path)
        for b in Bundle.allBundles where b.bundleURL.pathExtension == "xctest" {
            candidates.append(b.bundleURL.deletingLastPathComponent().appendingPathComponent("luaspoa").path)
        }
        candidates.append(repoFile(".build/debug/luaspoa").path)
        candidates.append(repoFile(".build/release/luaspoa").path)
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
