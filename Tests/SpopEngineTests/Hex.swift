import NIOCore

extension ByteBuffer {
    /// Bytes from a hex dump: "00 00 00 07 67 ..." (blanks and newlines ignored).
    init(hex: String) {
        let digits = hex.filter(\.isHexDigit)
        var bytes: [UInt8] = []
        var index = digits.startIndex
        while index < digits.endIndex {
            let next = digits.index(index, offsetBy: 2)
            bytes.append(UInt8(digits[index..<next], radix: 16)!)
            index = next
        }
        self.init(bytes: bytes)
    }

    var hex: String { readableBytesView.map { String(format: "%02x", $0) }.joined(separator: " ") }
}

#if canImport(Glibc)
import Glibc
#endif
import Foundation
