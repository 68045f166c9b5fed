"""Fetch a hashfed node's set into a local state file, resuming from its stored checkpoint.

    python3 -m hashfed_pytx.fetch --url http://127.0.0.1:7402 --state hashfed.json [--token-file F]

The state file holds the checkpoint (the feed cursor) and the set, {"<pytx type> <signal>":
{"members": [...], "labels": {...}}}, and is replaced atomically after each page, so a fetch
killed at any point resumes where the file says. At the end the set is printed in pytx's
local_file format (one "TYPE SIGNAL" per line, sorted), which is what `hashfed export --format te`
prints. Standard library only: the same paging, checkpoints and deletions as the pytx exchange.
"""

import argparse
import json
import os
import sys

from hashfed_pytx.node import NodeClient, merge


def load(path):
    try:
        with open(path) as f:
            st = json.load(f)
    except FileNotFoundError:
        return {"cursor": "", "signals": {}}
    return st


def save(path, st):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(st, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m hashfed_pytx.fetch", description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="the node's HTTP address, e.g. http://127.0.0.1:7402")
    ap.add_argument("--state", required=True, help="the state file (created when missing)")
    ap.add_argument("--token-file", help="a file holding the node's member token")
    ap.add_argument("--page-size", type=int, default=1000)
    ap.add_argument("--die-after", type=int, default=0, help=argparse.SUPPRESS)  # tests: crash after N updates
    args = ap.parse_args(argv)
    token = ""
    if args.token_file:
        with open(args.token_file) as f:
            token = f.read().strip()
    client = NodeClient(args.url, token=token, page_size=args.page_size)
    st = load(args.state)
    applied = 0
    for updates, cursor in client.fetch_updates(st["cursor"]):
        for (t, v), val in updates.items():
            k = t + " " + v
            new = merge(st["signals"].get(k), val)
            if new is None:
                st["signals"].pop(k, None)
            else:
                st["signals"][k] = new
            applied += 1
            if args.die_after and applied >= args.die_after:
                os._exit(3)  # a crash: this page is not saved
        st["cursor"] = cursor
        save(args.state, st)
    for k in sorted(st["signals"]):
        print(k)
    print("up to date at %s: %d signals" % (st["cursor"] or "the beginning", len(st["signals"])), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
