"""A zenoh peer that connects to the endpoints in an exo-discovery peers file (zenoh form).

Usage: python3 zenoh_node.py PEERS_FILE PORT
Reads PEERS_FILE once, at start (as a zenoh program reads its config), and opens a session in
peer mode, multicast scouting and gossip off (only those endpoints make connections), listening on
TCP PORT, IPv6 and IPv4. Prints `endpoints <the file's line>`, then `zid <its id>`, then
`peers <ids, comma-separated>` each time the list of connected peers changes; or
`error <message>` (and exits 1) if the session cannot be opened.
"""
import json
import sys
import time

import zenoh

path, port = sys.argv[1], int(sys.argv[2])
with open(path) as f:
    line = f.read().strip()
endpoints = [e for e in line.split(",") if e]
print("endpoints", line, flush=True)

config = zenoh.Config()
config.insert_json5("mode", '"peer"')
config.insert_json5("scouting/multicast/enabled", "false")
config.insert_json5("scouting/gossip/enabled", "false")
# One dual-stack listener: [::] takes IPv4 too (a second one on 0.0.0.0 would clash with it).
config.insert_json5("listen/endpoints", json.dumps([f"tcp/[::]:{port}"]))
config.insert_json5("connect/endpoints", json.dumps(endpoints))
try:
    session = zenoh.open(config)
except zenoh.ZError as e:
    print("error", str(e).replace("\n", " "), flush=True)
    sys.exit(1)
print("zid", session.info.zid(), flush=True)

last = None
while True:
    peers = sorted(str(z) for z in session.info.peers_zid())
    if peers != last:
        print("peers", ",".join(peers), flush=True)
        last = peers
    time.sleep(0.05)
