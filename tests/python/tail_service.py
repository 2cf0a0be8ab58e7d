"""The Python service of the tail-keep tests (tests/tests/tail_keep.rs): a WSGI app behind
OSProfiler 4.4.0's WsgiMiddleware, writing its points straight to Redis with OSProfiler's own
redis notifier, service "python".

Usage: tail_service.py <hmac_keys> <connection_string>. Prints its port, then serves (one
thread per request) until killed. A traced request records a "python_work" point of its own
inside the middleware's "wsgi" point; the body is the trace's base id (empty when untraced).
"""
import socketserver
import sys
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from osprofiler import notifier, profiler, web


def app(environ, start_response):
    p = profiler.get()
    base_id = ""
    if p is not None:
        base_id = p.get_base_id()
        with profiler.Trace("python_work", info={"job": "order"}):
            pass
    data = base_id.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    # wsgiref's default backlog (5) drops connections of a burst: 1 s SYN retries.
    request_queue_size = 128


def main():
    keys, connection_string = sys.argv[1], sys.argv[2]
    notifier.set(notifier.create(connection_string, project="tail", service="python",
                                 host="pyhost", conf={}))
    web.enable(keys)
    server = make_server("127.0.0.1", 0, web.WsgiMiddleware(app, hmac_keys=keys, enabled=True),
                         server_class=ThreadingWSGIServer, handler_class=Quiet)
    print(server.server_port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
