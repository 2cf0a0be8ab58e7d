"""A Python OSProfiler client, for interop tests.

Usage: client.py <url> <hmac_key>. Starts a trace, sends its signed headers to <url> and
prints {"base_id", "parent_id" (the id sent as parent), "status", "body"}.
"""
import json
import sys
import urllib.request

from osprofiler import notifier, profiler, web


def main():
    url, key = sys.argv[1], sys.argv[2]
    notifier.set(lambda payload: None)
    p = profiler.init(key)
    headers = web.get_trace_id_headers()
    req = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = resp.read().decode()
        status = resp.status
    print(json.dumps({"base_id": p.get_base_id(), "parent_id": p.get_id(), "status": status, "body": body}))


if __name__ == "__main__":
    main()
