import NIOCore
import SpopTestFrames

extension ByteBuffer {
    /// Bytes from a hex dump: "00 00 00 07 67 ..." (blanks and newlines ignored).
    init(hex: String) {
        self.init(bytes: hexBytes(hex))
    }

    var hex: String { readableBytesView.map { String(format: "%02x", $0) }.joined(separator: " ") }
}

#if canImport(Glibc)
import Glibc
#endif
import Foundation
