#!/usr/bin/env python3
"""Writes seed corpora for every fuzz target from the Go vectors (fuzz/corpus/<target>)."""
import json, os, sys

here = os.path.dirname(os.path.abspath(__file__))
vectors = os.path.join(here, "..", "mesh-proto", "tests", "vectors", "weave-v2")
out = os.path.join(here, "corpus")

def load(name):
    with open(os.path.join(vectors, name)) as f:
        return json.load(f)

def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

h = bytes.fromhex
header = load("header.json")
for i, c in enumerate(header["negotiation"]):
    put("preamble", f"neg{i}", h(c["a_sends"]) + bytes([2, 2]))
features = load("features.json")
for i, p in enumerate(features["peers"]):
    put("features", f"peer{i}", h(p["gob_canonical"]))
    put("gob", f"features{i}", h(p["gob_canonical"]))
    put("frame", f"features{i}", h(p["v2_frame_unencrypted"]))
put("features", "random_order", h(features["peers"][0]["gob_go_sample_random_order"]))
put("features", "v1", h(features["v1"]["gob_unencrypted"]))
crypto = load("crypto.json")
put("handshake", "a_stream", h(crypto["a_full_stream"]))
put("handshake", "b_stream", h(crypto["b_full_stream"]))
gossip = load("gossip.json")
for i, c in enumerate(gossip["cases"]):
    msgs = c.get("msgs") or ([c["msg"]] if "msg" in c else [])
    if "protocol_msg" in c:
        put("message", f"case{i}", h(c["protocol_msg"]))
    for j, m in enumerate(msgs):
        put("message", f"case{i}_{j}", h(m["protocol_msg"]))
        put("frame", f"gossip{i}_{j}", h(m["frame"]))
for k, v in gossip["app_payloads"].items():
    if isinstance(v, dict) and "gob" in v:
        put("gob", f"counter_{k}", h(v["gob"]))
topology = load("topology.json")
for k, v in topology.items():
    if isinstance(v, dict) and "gob" in v:
        put("topology", k, h(v["gob"]))
        put("gob", f"topology_{k}", h(v["gob"]))
prims = load("gob-primitives.json")
for kind in ("uint", "int", "bool", "string", "bytes"):
    for i, c in enumerate(prims[kind]):
        put("gob", f"{kind}{i}", h(c["top_level_message"]))
for cap in ("capture-unencrypted.json", "capture-unencrypted-65s.json"):
    c = load(cap)
    for d in ("D2L", "L2D"):
        stream = b"".join(h(x["hex"]) for x in c["chunks"] if x["dir"] == d)
        put("node", f"{cap}_{d}", stream)
        put("frame", f"{cap}_{d}", stream[8:])
print("corpus written to", out)
