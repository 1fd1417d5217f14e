"""Downloads against a server on 127.0.0.1: resume with HTTP Range, a clean restart when the server
ignores Range, size and SHA-256 checks, and one-line errors that leave no file under the target's name."""

import hashlib
import http.server
import socket
import threading

import pytest

from handpose.cli import main
from handpose.data.download import DownloadError, download

PAYLOAD = bytes(range(256)) * 4000  # 1 MB


class Server(http.server.ThreadingHTTPServer):
    """Serves PAYLOAD at /file.zip. `cut_after` drops the connection after that many bytes (once);
    `honour_range` off makes it answer every request with the whole file, as some servers do."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.cut_after: int | None = None
        self.honour_range = True
        self.ranges: list[str | None] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/file.zip"


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
        start = int(asked.removeprefix("bytes=").rstrip("-")) if asked and server.honour_range else 0
        body = PAYLOAD[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        self.end_headers()
        if server.cut_after is not None:
            body, server.cut_after = body[: server.cut_after], None
            self.wfile.write(body)
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)  # the transfer dies mid-file
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_download_arrives_whole_and_verified(server, tmp_path):
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    target = download(server.url, tmp_path / "a.zip", size=len(PAYLOAD), sha256=sha, progress=False)
    assert target.read_bytes() == PAYLOAD and files(tmp_path) == ["a.zip"]


def test_an_interrupted_download_resumes_where_it_stopped(server, tmp_path):
    server.cut_after = 300_000
    with pytest.raises(DownloadError, match=r"interrupted after 300,000 bytes .* run again to resume"):
        download(server.url, tmp_path / "a.zip", progress=False)
    assert files(tmp_path) == [".a.zip.tmp"]  # nothing looks complete
    download(server.url, tmp_path / "a.zip", size=len(PAYLOAD), progress=False)
    assert server.ranges == [None, "bytes=300000-"]
    assert (tmp_path / "a.zip").read_bytes() == PAYLOAD and files(tmp_path) == ["a.zip"]


def test_a_server_that_ignores_range_restarts_cleanly(server, tmp_path):
    server.cut_after, server.honour_range = 300_000, False
    with pytest.raises(DownloadError):
        download(server.url, tmp_path / "a.zip", progress=False)
    download(server.url, tmp_path / "a.zip", size=len(PAYLOAD), progress=False)
    assert (tmp_path / "a.zip").read_bytes() == PAYLOAD  # not the first 300 kB twice


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"size": len(PAYLOAD) + 1}, r"got 1,024,000 of 1,024,001 bytes"),
        ({"size": len(PAYLOAD) - 1}, r"got 1,024,000 bytes, expected 1,023,999; the file was removed"),
        ({"sha256": "0" * 64}, r"SHA-256 mismatch"),
    ],
)
def test_a_file_that_fails_its_check_never_gets_the_targets_name(server, tmp_path, kwargs, message):
    with pytest.raises(DownloadError, match=message):
        download(server.url, tmp_path / "a.zip", progress=False, **kwargs)
    assert "a.zip" not in files(tmp_path)


def test_http_errors_and_refused_connections_are_one_line_naming_the_url(server, tmp_path, capsys):
    missing = server.url.replace("file.zip", "nothing.zip")
    assert main(["download", missing, "--out", str(tmp_path / "a.zip"), "-q"]) == 2
    assert capsys.readouterr().err.strip() == f"handpose download: error: {missing}: HTTP 404 Not Found"
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/file.zip"
    assert main(["download", closed, "--out", str(tmp_path / "a.zip"), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"handpose download: error: {closed}: cannot connect") and "\n" not in err
    assert files(tmp_path) == []
