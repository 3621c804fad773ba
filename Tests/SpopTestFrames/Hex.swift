/// "00 00 00 81 01 ..." (blanks and newlines ignored) -> bytes.
public func hexBytes(_ s: String) -> [UInt8] {
    let digits = s.filter(\.isHexDigit)
    precondition(digits.count % 2 == 0, "odd number of hex digits")
    var out: [UInt8] = []
    out.reserveCapacity(digits.count / 2)
    var i = digits.startIndex
    while i < digits.endIndex {
        let j = digits.index(i, offsetBy: 2)
        out.append(UInt8(digits[i..<j], radix: 16)!)
        i = j
    }
    return out
}
