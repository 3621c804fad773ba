#!/usr/bin/env python3
"""A small HTTP/1.1 keep-alive server for the HTTP client tests: prints its port,
then serves known answers until its stdin closes (so it dies with the test).
With a port argument (end-to-end tests): listens there and serves until killed.
With --tls CERT KEY: https."""
import http.server, socketserver, ssl, sys, threading, time

accepted = 0  # connections accepted so far (/conns)
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def setup(self):
        global accepted
        with lock:
            accepted += 1
        super().setup()

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?")[0]
        if path == "/hello":
            self.answer(200, b"hello", [("X-Multi", "a"), ("X-Multi", "b"), ("Content-Type", "text/plain")])
        elif path == "/echo":
            text = "%s %s %s %s" % (self.command, self.headers.get("X-Req", "-"),
                                     ",".join(self.headers.get_all("X-List") or []), body.decode())
            self.answer(201, text.encode(), [("X-Method", self.command)])
        elif path == "/slow":
            time.sleep(3)
            self.answer(200, b"late")
        elif path == "/big":
            self.answer(200, b"x" * (2 << 20))
        elif path == "/conns":
            with lock:
                self.answer(200, str(accepted).encode())
        elif path == "/redirect":
            self.answer(302, b"", [("Location", "/hello")])
        else:
            self.answer(404, b"not found")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


tls = None
if len(sys.argv) > 3 and sys.argv[1] == "--tls":
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(sys.argv[2], sys.argv[3])
    del sys.argv[1:4]
server = Server(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0), Handler)
if tls:
    server.socket = tls.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
if len(sys.argv) > 1:
    server.serve_forever()
threading.Thread(target=server.serve_forever, daemon=True).start()
sys.stdin.read()
