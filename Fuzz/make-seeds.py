#!/usr/bin/env python3
"""Writes the seed corpus (Fuzz/corpus/frames, Fuzz/corpus/lua) from the golden frames
of Tests/SpopEngineTests/FrameTests.swift (the reference frames of docs/spop-protocol.md §11).

frames/: one mode byte (see Sources/SpopFuzzTargets/FrameStreamFuzzer.swift) + a stream.
lua/:    the body of a NOTIFY message after its name: NB-ARGS, arguments, more messages.
Re-run after changing the golden frames: ./Fuzz/make-seeds.py
"""
import os, re

HERE = os.path.dirname(os.path.abspath(__file__))
source = open(os.path.join(HERE, "..", "Tests", "SpopEngineTests", "FrameTests.swift")).read()
golden = {}
for name, body in re.findall(r'static let (\w+) = (""".*?"""|"[^"]*")', source, re.S):
    golden[name] = bytes.fromhex(re.sub(r'[^0-9a-fA-F]', '', body))
g = golden

def write(directory, name, data):
    os.makedirs(os.path.join(HERE, "corpus", directory), exist_ok=True)
    with open(os.path.join(HERE, "corpus", directory, name), "wb") as f:
        f.write(data)

WHOLE, AUTO_HELLO, DRAIN, TIMER, NO_FRAGMENTATION = 0x00, 0x01, 0x20, 0x40, 0x80
def chunked(n): return (n & 0x0f) << 1

notifies = g["notifyCheckClientIP"] + g["notifyEveryArgumentForm"]
write("frames", "hello-notify-disconnect", bytes([WHOLE]) + g["haproxyHello"] + notifies + g["haproxyDisconnectTimeout"])
write("frames", "hello-bytewise", bytes([chunked(1)]) + g["haproxyHello"] + g["notifyCheckClientIP"])
write("frames", "healthcheck", bytes([WHOLE]) + g["healthCheckHello"])
write("frames", "notify-pipelined-chunks-of-5", bytes([AUTO_HELLO | chunked(5)]) + notifies * 3)
write("frames", "fragments", bytes([AUTO_HELLO]) + g["fragmentFirst"] + g["fragmentLast"] + g["notifyCheckClientIP"])
write("frames", "fragment-abort", bytes([AUTO_HELLO]) + g["fragmentFirst"] + g["fragmentAbort"] + g["notifyCheckClientIP"])
write("frames", "fragments-unannounced", bytes([AUTO_HELLO | NO_FRAGMENTATION]) + g["fragmentFirst"] + g["fragmentLast"])
write("frames", "agent-frames-skipped", bytes([AUTO_HELLO]) + g["agentHello"] + g["ackScore75"] + g["ackUnsetScore"]
      + g["emptyAck"] + g["agentDisconnectNormal"] + g["notifyCheckClientIP"])
write("frames", "drain-mid-fragment", bytes([AUTO_HELLO | DRAIN]) + g["notifyCheckClientIP"] + g["fragmentFirst"])
write("frames", "timer-before-hello", bytes([TIMER]) + g["haproxyHello"][:20])
write("frames", "disconnect", bytes([AUTO_HELLO]) + g["haproxyDisconnectTimeout"])
# The whole input is also decoded as a LIST-OF-ACTIONS: ACK payloads without header.
actions = b"".join(g[n][11:] for n in ("ackScore75", "ackScoreMinus1", "ackUnsetScore"))
write("frames", "action-list", bytes([WHOLE]) + actions)

# NOTIFY payloads: LEN(4) + TYPE(1) + FLAGS(4) + stream-id + frame-id, then messages.
def message_body(frame, header_len):
    payload = frame[header_len:]
    name_len = payload[0]
    return payload[1 + name_len:]
write("lua", "ip-argument", message_body(g["notifyCheckClientIP"], 4 + 1 + 4 + 2 + 1))
write("lua", "every-argument-form", message_body(g["notifyEveryArgumentForm"], 4 + 1 + 4 + 1 + 1))
write("lua", "two-messages", message_body(g["notifyCheckClientIP"], 12) + b"\x01m" + message_body(g["notifyEveryArgumentForm"], 11))
