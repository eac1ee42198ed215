"""Downloading archives from a local HTTP server: md5 check, resume with Range, errors (no internet needed)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from klugerhans.data.gtsrb import download
from klugerhans.data.gtsrb.download import Archive, download_gtsrb, fetch
from klugerhans.data.gtsrb.loader import load_gtsrb
from klugerhans.errors import DataError


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    files: dict[str, bytes]
    cut: dict[str, int]  # name -> bytes to send before dropping the connection (once)
    honour_range: bool
    requests: list[tuple[str, str | None]]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 5  # a stuck client cannot hold a handler thread for long

    def do_GET(self) -> None:
        name = self.path.rsplit("/", 1)[-1]
        range_header = self.headers.get("Range")
        self.server.requests.append((name, range_header))
        data = self.server.files.get(name)
        if data is None:
            self.send_error(404)
            return
        start = 0
        if range_header and self.server.honour_range:
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = self.server.cut.pop(name, None)
        self.wfile.write(body if cut is None else body[:cut])
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_Server]:
    """A file server on 127.0.0.1 (random port) in a daemon thread, shut down after the test."""
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.files, srv.cut, srv.honour_range, srv.requests = {}, {}, True, []
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def _url(srv: _Server) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}/archives"


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _serve(srv: _Server, files: dict[str, bytes]) -> list[Archive]:
    srv.files.update(files)
    return [Archive(name, _md5(data)) for name, data in files.items()]


def test_downloads_every_archive(server, tmp_path):
    files = {"a.zip": b"a" * 5000, "b.zip": bytes(range(256)) * 40}
    archives = _serve(server, files)
    dest = download_gtsrb(tmp_path / "dl", base_url=_url(server), archives=archives, progress=False, timeout=5)
    assert dest == tmp_path / "dl"
    for name, data in files.items():
        assert (dest / name).read_bytes() == data
    assert not list(dest.glob("*.part"))
    # Present archives are not fetched again.
    n = len(server.requests)
    download_gtsrb(dest, base_url=_url(server), archives=archives, progress=False, timeout=5)
    assert len(server.requests) == n


def test_interrupted_transfer_resumes_with_a_range_request(server, tmp_path):
    data = bytes(range(256)) * 64
    [archive] = _serve(server, {"big.zip": data})
    server.cut["big.zip"] = 3000
    with pytest.raises(DataError, match=r"interrupted.*run again to resume") as err:
        download_gtsrb(tmp_path, base_url=_url(server), archives=[archive], progress=False, timeout=5)
    assert "\n" not in str(err.value)
    assert (tmp_path / "big.zip.part").stat().st_size == 3000
    assert not (tmp_path / "big.zip").exists()
    download_gtsrb(tmp_path, base_url=_url(server), archives=[archive], progress=False, timeout=5)
    assert server.requests[-1] == ("big.zip", "bytes=3000-")
    assert (tmp_path / "big.zip").read_bytes() == data
    assert not (tmp_path / "big.zip.part").exists()


def test_server_ignoring_range_restarts_from_scratch(server, tmp_path):
    data = b"0123456789" * 300
    [archive] = _serve(server, {"x.zip": data})
    server.honour_range = False
    (tmp_path / "x.zip.part").write_bytes(b"stale partial")
    fetch(f"{_url(server)}/x.zip", tmp_path / "x.zip", archive.md5, progress=False, timeout=5)
    assert (tmp_path / "x.zip").read_bytes() == data


def test_complete_part_file_is_accepted_after_416(server, tmp_path):
    data = b"done" * 100
    [archive] = _serve(server, {"x.zip": data})
    (tmp_path / "x.zip.part").write_bytes(data)
    fetch(f"{_url(server)}/x.zip", tmp_path / "x.zip", archive.md5, progress=False, timeout=5)
    assert (tmp_path / "x.zip").read_bytes() == data


def test_md5_mismatch_is_a_data_error_and_discards_the_part(server, tmp_path):
    _serve(server, {"x.zip": b"tampered" * 50})
    with pytest.raises(DataError, match="md5") as err:
        download_gtsrb(tmp_path, base_url=_url(server), archives=[Archive("x.zip", "0" * 32)], progress=False)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "x.zip").exists() and not (tmp_path / "x.zip.part").exists()


def test_missing_file_on_the_server(server, tmp_path):
    with pytest.raises(DataError, match="HTTP 404"):
        download_gtsrb(tmp_path, base_url=_url(server), archives=[Archive("nope.zip", "0" * 32)], progress=False)


def test_unreachable_server(tmp_path, server):
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    with pytest.raises(DataError, match="interrupted"):
        fetch(f"http://127.0.0.1:{port}/x.zip", tmp_path / "x.zip", "0" * 32, progress=False, timeout=2)


def test_load_with_download_fills_the_cache_folder(server, make_gtsrb, cache_dir, monkeypatch):
    # Serve a tiny fake official release in place of the INI server.
    fake = make_gtsrb("official-zip")
    files = {a.name: (fake.root / a.name).read_bytes() for a in download.ARCHIVES}
    monkeypatch.setattr(download, "ARCHIVES", tuple(_serve(server, files)))
    monkeypatch.setattr(download, "BASE_URL", _url(server))
    with pytest.raises(DataError, match="pass --data-dir or --download"):
        load_gtsrb(cache_dir=cache_dir, progress=False)
    ds = load_gtsrb(cache_dir=cache_dir, download=True, progress=False)
    assert ds.info["layout"] == "official-zip"
    assert Path(ds.info["root"]) == cache_dir / "downloads" / "gtsrb"
    assert len(ds.train) == len(fake.train) and len(ds.test) == len(fake.test)
    assert sorted(name for name, _ in server.requests) == sorted(files)


def test_download_completes_a_partial_copy(server, make_gtsrb, cache_dir, monkeypatch):
    fake = make_gtsrb("official-zip")
    gt = fake.root / "GTSRB_Final_Test_GT.zip"
    monkeypatch.setattr(download, "ARCHIVES", tuple(_serve(server, {gt.name: gt.read_bytes()})))
    monkeypatch.setattr(download, "BASE_URL", _url(server))
    gt.unlink()
    with pytest.raises(DataError, match=r"GTSRB_Final_Test_GT\.zip"):
        load_gtsrb(data_dir=fake.root, cache_dir=cache_dir, progress=False)
    ds = load_gtsrb(data_dir=fake.root, cache_dir=cache_dir, download=True, progress=False)
    assert len(ds.test) == len(fake.test)
    assert [name for name, _ in server.requests] == [gt.name]
