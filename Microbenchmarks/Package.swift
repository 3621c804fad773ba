// swift-tools-version: 6.1
// Microbenchmarks (ordo-one/benchmark), kept out of the main package so that its
// build and CI stay lean. Run from this directory: swift package benchmark
import PackageDescription

let package = Package(
    name: "luaspoa-benchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "luaspoa", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        .target(
            name: "HotPathFixtures",
            dependencies: [
                .product(name: "SpopEngine", package: "luaspoa"),
                .product(name: "LuaRuntime", package: "luaspoa"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/HotPathFixtures"
        ),
        // Instruction counts under callgrind (see its main.swift).
        .executableTarget(name: "hot-path-cost", dependencies: ["HotPathFixtures"], path: "Sources/hot-path-cost"),
        // AsyncHTTPClient alone, configured as spoa.httpclient (benchmarks/run.sh, the clients).
        .executableTarget(
            name: "http-client-alone",
            dependencies: [
                .product(name: "LuaRuntime", package: "luaspoa"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Sources/http-client-alone"
        ),
        .executableTarget(
            name: "SpopHotPath",
            dependencies: [
                "HotPathFixtures",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "SpopEngine", package: "luaspoa"),
                .product(name: "LuaRuntime", package: "luaspoa"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/SpopHotPath",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ]
)
