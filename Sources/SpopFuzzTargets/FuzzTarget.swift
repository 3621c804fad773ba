import Foundation

/// The fuzz entry points by name; the libFuzzer binary picks one with SPOP_FUZZ_TARGET.
public enum FuzzTarget: String, CaseIterable, Sendable {
    case frames
    case lua

    public func run(_ data: UnsafeRawBufferPointer) {
        switch self {
        case .frames: FrameStreamFuzzer.run(data)
        case .lua: LuaDispatchFuzzer.run(data)
        }
    }

    /// `SPOP_FUZZ_TARGET=lua` selects the Lua dispatch; the frame decoder otherwise.
    public static let selected: FuzzTarget = {
        ProcessInfo.processInfo.environment["SPOP_FUZZ_TARGET"].flatMap(FuzzTarget.init(rawValue:)) ?? .frames
    }()

    /// Runs `target` over every file under `paths` (files or directories); returns the count.
    @discardableResult
    public static func replay(_ target: FuzzTarget, paths: [String]) throws -> Int {
        var count = 0
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: path])
            }
            let files = isDirectory.boolValue
                ? try FileManager.default.contentsOfDirectory(atPath: path).sorted().map { path + "/" + $0 }
                : [path]
            for file in files {
                let data = try Data(contentsOf: URL(fileURLWithPath: file))
                data.withUnsafeBytes { target.run($0) }
                count += 1
            }
        }
        return count
    }

    /// `SpopFuzz frames|lua PATH...`: replays inputs without libFuzzer.
    public static func replayMain(_ arguments: [String]) {
        guard arguments.count >= 3, let target = FuzzTarget(rawValue: arguments[1]) else {
            FileHandle.standardError.write(Data("usage: SpopFuzz frames|lua FILE_OR_DIR...\n".utf8))
            exit(2)
        }
        do {
            let count = try replay(target, paths: Array(arguments[2...]))
            print("\(target.rawValue): \(count) inputs replayed, no crash")
        } catch {
            FileHandle.standardError.write(Data("SpopFuzz: \(error)\n".utf8))
            exit(1)
        }
    }
}
