"""A file server on 127.0.0.1 for the download tests: Range with If-Range, an ETag, and the ways real
servers go wrong (a dropped connection, Range ignored, no Content-Length, a web page)."""

import hashlib
import http.server
import socket

PAYLOAD = bytes(range(256)) * 4000  # 1 MB


class Server(http.server.ThreadingHTTPServer):
    """Serves `payload` at /file.zip, with a strong ETag of its bytes (`etag` off: none), honouring
    Range with If-Range as RFC 9110 says. `cut_after` drops the connection after that many bytes (once);
    `honour_range` off answers every request with the whole file, as some servers do; `length` off
    sends no Content-Length (the end is the connection's close); `content_type` is sent as given."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.payload = PAYLOAD
        self.cut_after: int | None = None
        self.honour_range = True
        self.etag = True
        self.length = True
        self.content_type = "application/zip"
        self.ranges: list[str | None] = []

    def handle_error(self, request, client_address) -> None:
        pass  # a client that hangs up mid-body (a refused download) is part of the tests, not an error

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/file.zip"

    @property
    def tag(self) -> str:
        return '"' + hashlib.sha256(self.payload).hexdigest()[:16] + '"'


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest's output clean
        pass

    def do_GET(self) -> None:
        server: Server = self.server
        if self.path != "/file.zip":
            self.send_error(404, "Not Found")
            return
        asked = self.headers.get("Range")
        server.ranges.append(asked)
        same = self.headers.get("If-Range") in (None, server.tag if server.etag else None)
        start = int(asked.removeprefix("bytes=").rstrip("-")) if asked and server.honour_range and same else 0
        body = server.payload[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", server.content_type)
        if server.etag:
            self.send_header("ETag", server.tag)
        if server.length:
            self.send_header("Content-Length", str(len(body)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(server.payload) - 1}/{len(server.payload)}")
        self.end_headers()
        if server.cut_after is not None:
            body, server.cut_after = body[: server.cut_after], None
        self.wfile.write(body)
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)  # the end of the body, or the transfer dying mid-file
        self.close_connection = True
