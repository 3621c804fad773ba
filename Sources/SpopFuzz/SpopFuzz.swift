import SpopFuzzTargets

// Built two ways:
// - by Fuzz/build.sh (`-sanitize=fuzzer -D FUZZING`): libFuzzer supplies `main` and
//   calls the entry point below; see docs/fuzzing.md;
// - plainly, it replays files: `SpopFuzz frames|lua FILE_OR_DIR...` (a crash
//   reproducer without the fuzzing toolchain).
// Not main.swift: SwiftPM then parses it as a library, so `@main` may be left out.

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTarget.selected.run(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

public typealias Arguments = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?

@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<Arguments>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

// SwiftPM links executables with `main=<Target>_main`, so libFuzzer's own `main` is
// never pulled in: start its driver from here.
@_cdecl("SpopFuzz_main")
public func spopFuzzMain(_ argc: CInt, _ argv: Arguments) -> CInt {
    var argc = argc
    var argv = argv
    return runFuzzerDriver(&argc, &argv, fuzzOneInput)
}
#else
@main
enum SpopFuzzReplayer {
    static func main() { FuzzTarget.replayMain(CommandLine.arguments) }
}
#endif
