// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "luaspoa",
    products: [
        .library(name: "SpopEngine", targets: ["SpopEngine"]),
        .library(name: "LuaRuntime", targets: ["LuaRuntime"]),
        .executable(name: "luaspoa", targets: ["luaspoa"]),
        .executable(name: "async-agent-example", targets: ["AsyncAgentExample"]),
        .executable(name: "minimal-agent-example", targets: ["MinimalAgentExample"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    ],
    targets: [
        // Lua 5.4 from the system (Debian/Ubuntu: liblua5.4-dev).
        .systemLibrary(
            name: "CLua",
            pkgConfig: "lua5.4",
            providers: [.apt(["liblua5.4-dev"])]
        ),
        // hiredis' reply parser for spoa.redis (Debian/Ubuntu: libhiredis-dev). No
        // pkgConfig: its hiredis.pc adds -D_FILE_OFFSET_BITS=64, which SwiftPM refuses
        // with a warning; the headers and library are in the default paths.
        .systemLibrary(name: "CHiredis"),
        // c-ares for spoa.dns (Debian/Ubuntu: libc-ares-dev).
        .systemLibrary(name: "CAres", pkgConfig: "libcares", providers: [.apt(["libc-ares-dev"])]),
        // Every function Lua can call lives here: a Lua error is a longjmp and must
        // never cross a Swift frame.
        // spoa.crypto and spoa.jwt: OpenSSL's libcrypto (libssl-dev).
        .systemLibrary(
            name: "CCrypto",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        // spoa.re: PCRE2, 8-bit code units, JIT (libpcre2-dev).
        .systemLibrary(
            name: "CPCRE2",
            pkgConfig: "libpcre2-8",
            providers: [.apt(["libpcre2-dev"])]
        ),
        // spoa.json: json-c (libjson-c-dev); luaspoa_json.c says why not lua-cjson.
        .systemLibrary(
            name: "CJSONC",
            pkgConfig: "json-c",
            providers: [.apt(["libjson-c-dev"])]
        ),
        // spoa.geoip: libmaxminddb (libmaxminddb-dev).
        .systemLibrary(
            name: "CMaxMindDB",
            pkgConfig: "libmaxminddb",
            providers: [.apt(["libmaxminddb-dev"])]
        ),
        .target(name: "CLuaSpoa", dependencies: ["CLua", "CCrypto", "CPCRE2", "CJSONC", "CMaxMindDB"]),
        // The SPOP 2.0 protocol engine: codec, connection state machine, NIO server.
        .target(
            name: "SpopEngine",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Per-worker Lua states that answer NOTIFY frames with the user's script.
        .target(
            name: "LuaRuntime",
            dependencies: [
                "CLuaSpoa", "SpopEngine", "CHiredis", "CAres",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // `luaspoa bench`: HAProxy's side of SPOP as a load generator, for any agent.
        .target(
            name: "SpopBench",
            dependencies: [
                "SpopEngine",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .executableTarget(
            name: "luaspoa",
            dependencies: [
                "SpopEngine", "LuaRuntime", "SpopBench",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Yams", package: "Yams"),
            ],
            // Release link with lld: RELR-packed relative relocations (2.2 MB of .rela.dyn
            // that the loader read and kept resident at every start: -1.2 MB idle RSS) and
            // no export of the program's 16k symbols (-0.9 MB); still a PIE (ASLR kept).
            linkerSettings: [
                .unsafeFlags(
                    ["-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs", "-Xlinker", "--no-export-dynamic"],
                    .when(platforms: [.linux], configuration: .release))
            ]
        ),
        // The smallest Swift agent without Lua (docs/library.md).
        .executableTarget(
            name: "MinimalAgentExample",
            dependencies: [
                "SpopEngine",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Examples/MinimalAgent"
        ),
        // A Swift agent without Lua whose handler awaits (docs/library.md).
        .executableTarget(
            name: "AsyncAgentExample",
            dependencies: [
                "SpopEngine",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Examples/AsyncAgent"
        ),
        // Fuzz entry points (frame decoder + state machine, Lua dispatch); see docs/fuzzing.md.
        .target(
            name: "SpopFuzzTargets",
            dependencies: [
                "SpopEngine", "LuaRuntime",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // libFuzzer binary with -sanitize=fuzzer -D FUZZING; a corpus replayer otherwise.
        .executableTarget(name: "SpopFuzz", dependencies: ["SpopFuzzTargets"]),
        .testTarget(
            name: "FuzzCorpusTests",
            dependencies: ["SpopFuzzTargets"]
        ),
        // The reference frames of docs/spop-protocol.md and the hex parser, shared by the tests.
        .target(name: "SpopTestFrames", path: "Tests/SpopTestFrames"),
        .testTarget(
            name: "SpopEngineTests",
            dependencies: [
                "SpopEngine", "SpopTestFrames",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ]
        ),
        .testTarget(
            name: "LuaRuntimeTests",
            dependencies: [
                "LuaRuntime", "SpopEngine", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "SpopBenchTests",
            dependencies: [
                "SpopBench", "SpopEngine",
                .product(name: "Logging", package: "swift-log"), .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "EndToEndTests",
            // No engine: it talks to the built binaries over sockets, with its own wire helpers.
            dependencies: ["SpopTestFrames"]
        ),
    ]
)
