// The project's one set of reference frames, shared by the test targets.

/// The reference frames of docs/spop-protocol.md §11 as hex dumps: the unit tests decode and
/// re-encode them byte for byte, the end-to-end tests send them to the real binary.
public enum Golden {
    public static let haproxyHello = """
        00 00 00 81 01 00 00 00 01 00 00 12 73 75 70 70 6f 72 74 65 64 2d 76 65 72 73 69 6f 6e 73 08 03
        32 2e 30 0e 6d 61 78 2d 66 72 61 6d 65 2d 73 69 7a 65 03 fc f0 06 0c 63 61 70 61 62 69 6c 69 74
        69 65 73 08 10 70 69 70 65 6c 69 6e 69 6e 67 2c 61 73 79 6e 63 09 65 6e 67 69 6e 65 2d 69 64 08
        24 30 62 31 65 35 63 39 61 2d 37 66 33 64 2d 34 61 32 31 2d 39 63 34 34 2d 35 65 36 66 37 61 38
        62 39 63 30 64
        """
    public static let healthCheckHello = """
        00 00 00 4e 01 00 00 00 01 00 00 12 73 75 70 70 6f 72 74 65 64 2d 76 65 72 73 69 6f 6e 73 08 03
        32 2e 30 0e 6d 61 78 2d 66 72 61 6d 65 2d 73 69 7a 65 03 fc f0 06 0c 63 61 70 61 62 69 6c 69 74
        69 65 73 08 00 0b 68 65 61 6c 74 68 63 68 65 63 6b 11
        """
    public static let agentHello = """
        00 00 00 40 65 00 00 00 01 00 00 07 76 65 72 73 69 6f 6e 08 03 32 2e 30 0e 6d 61 78 2d 66 72 61
        6d 65 2d 73 69 7a 65 03 fc f0 06 0c 63 61 70 61 62 69 6c 69 74 69 65 73 08 0a 70 69 70 65 6c 69
        6e 69 6e 67
        """
    public static let minimalAgentHello = """
        00 00 00 36 65 00 00 00 01 00 00 07 76 65 72 73 69 6f 6e 08 03 32 2e 30 0e 6d 61 78 2d 66 72 61
        6d 65 2d 73 69 7a 65 03 fc f0 06 0c 63 61 70 61 62 69 6c 69 74 69 65 73 08 00
        """
    public static let notifyCheckClientIP = """
        00 00 00 21 03 00 00 00 01 fc 03 01 0f 63 68 65 63 6b 2d 63 6c 69 65 6e 74 2d 69 70 01 02 69 70
        06 c0 00 02 0a
        """
    /// §11.3 as HAProxy 3.1+ sends it (frame-id 5, stream-id 0).
    public static let notifyCheckClientIPv31 = """
        00 00 00 20 03 00 00 00 01 05 01 0f 63 68 65 63 6b 2d 63 6c 69 65 6e 74 2d 69 70 01 02 69 70 06
        c0 00 02 0a
        """
    public static let notifyEveryArgumentForm = """
        00 00 00 37 03 00 00 00 01 07 01 04 64 65 6d 6f 05 00 00 01 62 11 01 6e 04 fe f0 fe fe fe fe fe
        fe fe 0e 02 76 36 07 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01 01 65 08 00
        """
    public static let ackScore75 = "00 00 00 13 67 00 00 00 01 fc 03 01 01 03 02 05 73 63 6f 72 65 02 4b"
    public static let ackScoreMinus1 = "00 00 00 1c 67 00 00 00 01 fc 03 01 01 03 02 05 73 63 6f 72 65 02 ff f0 fe fe fe fe fe fe fe 0e"
    public static let ackUnsetScore = "00 00 00 11 67 00 00 00 01 fc 03 01 02 02 02 05 73 63 6f 72 65"
    public static let emptyAck = "00 00 00 07 67 00 00 00 01 01 01"
    public static let fragmentFirst = "00 00 00 13 03 00 00 00 00 fc 03 02 01 6d 01 01 73 08 0a 41 42 43 44"
    public static let fragmentLast = "00 00 00 0e 00 00 00 00 01 fc 03 02 45 46 47 48 49 4a"
    public static let fragmentAbort = "00 00 00 08 00 00 00 00 03 fc 03 02"
    public static let haproxyDisconnectTimeout = """
        00 00 00 31 02 00 00 00 01 00 00 0b 73 74 61 74 75 73 2d 63 6f 64 65 03 02 07 6d 65 73 73 61 67
        65 08 12 61 20 74 69 6d 65 6f 75 74 20 6f 63 63 75 72 72 65 64
        """
    public static let agentDisconnectNormal = """
        00 00 00 25 66 00 00 00 01 00 00 0b 73 74 61 74 75 73 2d 63 6f 64 65 03 00 07 6d 65 73 73 61 67
        65 08 06 6e 6f 72 6d 61 6c
        """
}
