"""What every test server here shares: a threaded HTTP/1.1 server on 127.0.0.1 that a client may
open many connections to at once, and a handler with quiet logs and one way to send a body."""

from __future__ import annotations

import http.server
import json
import threading


class QuietHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall

    def log_message(self, *args):
        pass

    def send_body(self, status: int, data: bytes, content_type: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def send_json(self, status: int, payload, headers: dict | None = None) -> None:
        self.send_body(status, json.dumps(payload).encode(), "application/json", headers)


class LocalServer:
    """Serves ``handler`` on 127.0.0.1 (any free port unless given) from ``__enter__`` to ``__exit__``."""

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler], port: int = 0):
        class Server(http.server.ThreadingHTTPServer):
            request_queue_size = 256  # a client opening 16+ connections at once must not overflow the backlog
            daemon_threads = True

        self.httpd = Server(("127.0.0.1", port), handler)
        self.root_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.release = threading.Event()  # set on exit, so that a handler told to hang lets go
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
