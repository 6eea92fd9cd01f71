"""Register a node with the exo-discovery agent and print its peers, in the socket's JSON mode.

Run with: python3 examples/json_client.py SOCKET "$(exo-discovery sign --key FILE --addr /ip4/0.0.0.0/tcp/4001)"
"""
import json, socket, sys

sock = socket.socket(socket.AF_UNIX)
sock.connect(sys.argv[1])  # the agent's socket; the registration lasts while it is open
f = sock.makefile("rw")
for request in ({"hello": {"magic": "exo-discovery", "version": 1}},
                {"register": {"signed_record": sys.argv[2]}},  # as `exo-discovery sign` prints it
                "subscribe"):
    f.write(json.dumps(request) + "\n")
f.flush()
for line in f:  # welcome, registered, snapshot, then one event a line
    msg = json.loads(line)
    if "error" in msg:
        sys.exit("exo-discovery: " + msg["error"]["message"])
    print(json.dumps(msg), flush=True)
