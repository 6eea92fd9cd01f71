"""Browse _p2p._udp.local. with python-zeroconf, an independent mDNS implementation.

Usage: python3 zeroconf_browse.py BIND_ADDRESS SECONDS
Prints one JSON object per resolved instance: name, port, TXT keys, addresses.
"""
import json
import sys
import time

from zeroconf import ServiceBrowser, ServiceListener, Zeroconf

TYPE = "_p2p._udp.local."


class Listener(ServiceListener):
    def __init__(self):
        self.seen = set()

    def _resolve(self, zc, type_, name):
        info = zc.get_service_info(type_, name, timeout=3000)
        if info is None or name in self.seen:
            return
        self.seen.add(name)
        print(
            json.dumps(
                {
                    "name": name,
                    "port": info.port,
                    "txt_keys": sorted(k.decode("ascii", "replace") for k in info.properties),
                    "addresses": info.parsed_addresses(),
                }
            ),
            flush=True,
        )

    def add_service(self, zc, type_, name):
        self._resolve(zc, type_, name)

    def update_service(self, zc, type_, name):
        self._resolve(zc, type_, name)

    def remove_service(self, zc, type_, name):
        pass


def main():
    bind, seconds = sys.argv[1], float(sys.argv[2])
    zc = Zeroconf(interfaces=[bind])
    ServiceBrowser(zc, TYPE, Listener())
    time.sleep(seconds)
    zc.close()


if __name__ == "__main__":
    main()
