// The reference frames of docs/spop-protocol.md, byte for byte.

import Foundation

/// The reference frames of docs/spop-protocol.md §11, byte for byte.
enum Golden {
    static let hello11_1 = hexBytes("""
        00 00 00 81 01 00 00 00 01 00 00 12 73 75 70 70
        6f 72 74 65 64 2d 76 65 72 73 69 6f 6e 73 08 03
        32 2e 30 0e 6d 61 78 2d 66 72 61 6d 65 2d 73 69
        7a 65 03 fc f0 06 0c 63 61 70 61 62 69 6c 69 74
        69 65 73 08 10 70 69 70 65 6c 69 6e 69 6e 67 2c
        61 73 79 6e 63 09 65 6e 67 69 6e 65 2d 69 64 08
        24 30 62 31 65 35 63 39 61 2d 37 66 33 64 2d 34
        61 32 31 2d 39 63 34 34 2d 35 65 36 66 37 61 38
        62 39 63 30 64
        """)
    static let notify11_3 = hexBytes("""
        00 00 00 21 03 00 00 00 01 fc 03 01 0f 63 68 65
        63 6b 2d 63 6c 69 65 6e 74 2d 69 70 01 02 69 70
        06 c0 00 02 0a
        """)
    static let notify11_3_v31 = hexBytes("""
        00 00 00 20 03 00 00 00 01 05 01 0f 63 68 65 63
        6b 2d 63 6c 69 65 6e 74 2d 69 70 01 02 69 70 06
        c0 00 02 0a
        """)
    static let notify11_6 = hexBytes("""
        00 00 00 37 03 00 00 00 01 07 01 04 64 65 6d 6f
        05 00 00 01 62 11 01 6e 04 fe f0 fe fe fe fe fe
        fe fe 0e 02 76 36 07 20 01 0d b8 00 00 00 00 00
        00 00 00 00 00 00 01 01 65 08 00
        """)
    static let fragment11_7_first = hexBytes("""
        00 00 00 13 03 00 00 00 00 fc 03 02 01 6d 01 01
        73 08 0a 41 42 43 44
        """)
    static let fragment11_7_last = hexBytes("""
        00 00 00 0e 00 00 00 00 01 fc 03 02 45 46 47 48
        49 4a
        """)
    static let fragment11_7_abort = hexBytes("00 00 00 08 00 00 00 00 03 fc 03 02")
    static let disconnect11_8 = hexBytes("""
        00 00 00 31 02 00 00 00 01 00 00 0b 73 74 61 74
        75 73 2d 63 6f 64 65 03 02 07 6d 65 73 73 61 67
        65 08 12 61 20 74 69 6d 65 6f 75 74 20 6f 63 63
        75 72 72 65 64
        """)
    static let agentDisconnect11_8 = hexBytes("""
        00 00 00 25 66 00 00 00 01 00 00 0b 73 74 61 74
        75 73 2d 63 6f 64 65 03 00 07 6d 65 73 73 61 67
        65 08 06 6e 6f 72 6d 61 6c
        """)
    static let healthcheck11_9 = hexBytes("""
        00 00 00 4e 01 00 00 00 01 00 00 12 73 75 70 70
        6f 72 74 65 64 2d 76 65 72 73 69 6f 6e 73 08 03
        32 2e 30 0e 6d 61 78 2d 66 72 61 6d 65 2d 73 69
        7a 65 03 fc f0 06 0c 63 61 70 61 62 69 6c 69 74
        69 65 73 08 00 0b 68 65 61 6c 74 68 63 68 65 63
        6b 11
        """)
}
