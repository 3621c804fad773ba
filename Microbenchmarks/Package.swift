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
