// Repeats one hot-path step N times, for instruction counts under callgrind
// (deterministic, unlike time on a shared machine). Instructions per message:
// run with N and 2N and divide the difference by N, which removes start-up.
//
//   swift build -c release --product hot-path-cost     # from Microbenchmarks/
//   valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p \
//       .build/release/hot-path-cost lua:ip_reputation 20000
//
// Steps: decode, encode, engine, lua:<script> (ip_reputation, empty_handler, ...).
import Foundation
import HotPathFixtures

let arguments = CommandLine.arguments
guard arguments.count == 3, let count = Int(arguments[2]) else {
    print("usage: hot-path-cost decode|encode|engine|lua:<script> N")
    exit(2)
}
let step: () -> Void
switch arguments[1] {
case "decode": step = HotPath.decodeStep()
case "encode": step = HotPath.encodeStep()
case "engine": step = HotPath.engineStep()
case let name where name.hasPrefix("lua:"):
    let dispatch = try HotPath.luaDispatchStep(String(name.dropFirst(4)))
    step = { precondition(dispatch() > 12, "the handler set no variable") }
default:
    print("unknown step \(arguments[1])")
    exit(2)
}
for _ in 0..<count { step() }
