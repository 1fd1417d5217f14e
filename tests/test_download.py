"""Downloads against a server on 127.0.0.1: resume with HTTP Range, a clean restart when the server
ignores Range, size and SHA-256 checks, and one-line errors that leave no file under the target's name."""

import hashlib
import socket
import threading

import numpy as np
import pytest
import yaml

from handpose.cli import main
from handpose.data.download import DownloadError, download
from handpose.data.split import load_split

from .dvc_project import ROOT
from .http_server import PAYLOAD, Server
from .test_freihand import zip_folder


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
    assert files(tmp_path) == [".a.zip.tmp", ".a.zip.tmp-validator"]  # nothing looks complete
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
        ({"size": len(PAYLOAD) + 1}, r"the server offers 1,024,000 bytes, expected 1,024,001; nothing was kept"),
        ({"size": len(PAYLOAD) - 1}, r"the server offers 1,024,000 bytes, expected 1,023,999"),
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


def test_the_data_stage_fetches_real_freihand_once_and_the_split_reads_it(tiny_dataset, tiny_split, tmp_path):
    archive = zip_folder(tiny_dataset, tmp_path / "served.zip", "FreiHAND_pub_v2/")
    payload = archive.read_bytes()
    srv = Server()
    srv.payload = payload
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        raw = yaml.safe_load((ROOT / "params.yaml").read_text())
        raw["data"].update(source="freihand", freihand_path=str(tmp_path / "raw" / "F.zip"), freihand_url=srv.url)
        raw["data"].update(freihand_versions=1)
        raw["data"].update(n_train=24, n_test=8)
        raw["model"].update(input_size=32)
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
        params = ["--params", str(tmp_path / "params.yaml")]
        for _ in range(2):  # the second time, the archive is there: no request
            assert main(["data", *params, "--out", str(tmp_path / "freihand"), "-q"]) == 0
        assert len(srv.ranges) == 1 and (tmp_path / "raw" / "F.zip").read_bytes() == payload
    finally:
        srv.shutdown()
        srv.server_close()
    assert (tmp_path / "freihand" / "F.zip").is_symlink()
    assert (
        main(["split", *params, "--dataset", str(tmp_path / "freihand"), "--out", str(tmp_path / "split"), "-q"]) == 0
    )
    for name in ("train", "test"):
        for key, value in load_split(tmp_path / "split", name).items():
            np.testing.assert_array_equal(value, tiny_split[name][key], err_msg=f"{name}.{key}")
