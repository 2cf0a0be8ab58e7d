"""A Python WSGI service behind OSProfiler's WsgiMiddleware, for interop tests.

Usage: wsgi_server.py <hmac_keys>   (comma-separated). Prints the port, then serves until
killed. Each response is the JSON view of the Python profiler inside the request:
{"base_id", "parent_id" (the caller's point), "hmac_key"} or {"traced": false}.
"""
import json
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server

from osprofiler import notifier, profiler, web


def app(environ, start_response):
    p = profiler.get()
    if p is None:
        body = {"traced": False}
    else:
        body = {"traced": True, "base_id": p.get_base_id(), "parent_id": p.get_parent_id(), "hmac_key": p.hmac_key}
    data = json.dumps(body).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def main():
    notifier.set(lambda payload: None)
    web.enable(sys.argv[1])
    server = make_server("127.0.0.1", 0, web.WsgiMiddleware(app, hmac_keys=sys.argv[1], enabled=True), handler_class=Quiet)
    print(server.server_port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
