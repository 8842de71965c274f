"""Tests of ``rsmg download`` against a local HTTP server that serves real files from the shared data pack.

The server supports ``Range`` (the stdlib handler does not), records every request, and can be told to
ignore Range or to drop the first connection half-way, so resume and retry are tested on real sockets.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from _paths import SHARED_DATA
from rsmg.cli import download as cli
from rsmg.data import download as dl
from rsmg.data.download import fetch
from rsmg.data_root import resolve_root_with_origin
from rsmg.errors import ConfigError, DataError

SHARED = SHARED_DATA
TRLABEL = SHARED / "trento/MGMNet/TRLabel.mat"
MUUFL_GT = SHARED / "muufl/gt.mat"
MUUFL_LIDAR = SHARED / "muufl/LiDAR.mat"

# in CI a missing file fails the tests below instead of skipping them (see tests/_paths.missing_shared_data)
pytestmark = pytest.mark.skipif(
    not TRLABEL.exists() and not os.environ.get("CI"), reason=f"shared data pack not found at {SHARED}"
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class RangeHandler(SimpleHTTPRequestHandler):
    """Serves files from ``directory`` with ``bytes=N-[M]`` Range support and a request log."""

    def do_GET(self) -> None:
        srv = self.server
        srv.log.append((self.path, self.headers.get("Range")))  # type: ignore[attr-defined]
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        rng = self.headers.get("Range")
        start, end, code = 0, len(data) - 1, 200
        if rng and srv.honour_range:  # type: ignore[attr-defined]
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng)
            assert m, rng
            start = int(m[1])
            end = int(m[2]) if m[2] else len(data) - 1
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            code = 206
        body = data[start : end + 1]
        self.send_response(code)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        if code == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.end_headers()
        if srv.drop_next > 0:  # type: ignore[attr-defined]
            srv.drop_next -= 1  # type: ignore[attr-defined]
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, ThreadingHTTPServer, Path]]:
    served = tmp_path / "served"
    served.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(served)))
    httpd.log = []  # type: ignore[attr-defined]
    httpd.honour_range = True  # type: ignore[attr-defined]
    httpd.drop_next = 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd, served
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def _local_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setattr(fetch, "RETRY_BACKOFF_S", 0.0)


def serve(served: Path, rel: str, src: Path | bytes) -> Path:
    dst = served / rel
    dst.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(src, bytes):
        dst.write_bytes(src)
    else:
        shutil.copyfile(src, dst)
    return dst


def table(url: str, **extra: dict) -> dict:
    """A test-only sources table: two real label files with their real sha256, served by the local server."""
    files = [
        {
            "path": "MGMNet/TRLabel.mat",
            "urls": [f"{url}/t/MGMNet/TRLabel.mat"],
            "sha256": sha256(TRLABEL),
            "size": TRLABEL.stat().st_size,
        },
        {"path": "gt.mat", "urls": [f"{url}/t/gt.mat"], "sha256": sha256(MUUFL_GT)},
    ]
    files += extra.get("files", [])
    return {"datasets": {"toy": {"dir": "t", "files": files}}}


def test_full_download_verifies_and_lands_atomically(server, tmp_path):
    url, httpd, served = server
    serve(served, "t/MGMNet/TRLabel.mat", TRLABEL)
    serve(served, "t/gt.mat", MUUFL_GT)
    root = tmp_path / "root"
    st = dl.download_dataset("toy", root, sources=table(url), progress=False)
    assert [s.status for s in st] == ["ok", "ok"]
    assert (root / "t/MGMNet/TRLabel.mat").read_bytes() == TRLABEL.read_bytes()
    assert st[0].sha256 == sha256(TRLABEL) and st[0].size == TRLABEL.stat().st_size
    assert st[1].url == f"{url}/t/gt.mat"
    assert not list(root.rglob("*.part"))
    assert all(r is None for _, r in httpd.log)  # no Range on a fresh download


def test_second_run_verifies_without_network(server, tmp_path):
    url, httpd, served = server
    serve(served, "t/MGMNet/TRLabel.mat", TRLABEL)
    serve(served, "t/gt.mat", MUUFL_GT)
    dl.download_dataset("toy", tmp_path, sources=table(url), progress=False)
    n = len(httpd.log)
    st = dl.download_dataset("toy", tmp_path, sources=table(url), progress=False)
    assert [s.status for s in st] == ["verified", "verified"]
    assert len(httpd.log) == n


def test_resume_from_partial_file_sends_range(server, tmp_path):
    url, httpd, served = server
    serve(served, "t/gt.mat", MUUFL_GT)
    data = MUUFL_GT.read_bytes()
    half = len(data) // 2
    target = tmp_path / "t/gt.mat"
    target.parent.mkdir(parents=True)
    target.with_name("gt.mat.part").write_bytes(data[:half])
    st = dl.download_dataset("toy", tmp_path, sources=table(url), only=["gt.mat"], progress=False)
    assert st[0].status == "ok"
    assert httpd.log == [("/t/gt.mat", f"bytes={half}-")]
    assert sha256(target) == sha256(MUUFL_GT)
    assert not target.with_name("gt.mat.part").exists()


def test_server_ignoring_range_restarts_instead_of_appending(server, tmp_path):
    url, httpd, served = server
    httpd.honour_range = False
    serve(served, "t/gt.mat", MUUFL_GT)
    part = tmp_path / "t/gt.mat.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(MUUFL_GT.read_bytes()[:1000])
    st = dl.download_dataset("toy", tmp_path, sources=table(url), only=["t/gt.mat"], progress=False)
    assert st[0].status == "ok"
    assert httpd.log[0][1] == "bytes=1000-"  # asked to resume, got 200, restarted
    assert sha256(tmp_path / "t/gt.mat") == sha256(MUUFL_GT)


def test_dropped_connection_is_retried_and_resumed(server, tmp_path):
    url, httpd, served = server
    httpd.drop_next = 1
    serve(served, "t/MGMNet/TRLabel.mat", TRLABEL)
    st = dl.download_dataset("toy", tmp_path, sources=table(url), only=["MGMNet/TRLabel.mat"], progress=False)
    assert st[0].status == "ok"
    half = TRLABEL.stat().st_size // 2
    assert httpd.log == [("/t/MGMNet/TRLabel.mat", None), ("/t/MGMNet/TRLabel.mat", f"bytes={half}-")]
    assert sha256(tmp_path / "t/MGMNet/TRLabel.mat") == sha256(TRLABEL)


def test_complete_part_with_known_size_is_verified_without_refetching(server, tmp_path):
    url, httpd, _ = server
    part = tmp_path / "t/MGMNet/TRLabel.mat.part"
    part.parent.mkdir(parents=True)
    shutil.copyfile(TRLABEL, part)  # a previous run got every byte, then died before verifying
    st = dl.download_dataset("toy", tmp_path, sources=table(url), only=["MGMNet/TRLabel.mat"], progress=False)
    assert st[0].status == "ok" and httpd.log == []


def test_hash_mismatch_raises_and_leaves_nothing(server, tmp_path):
    url, _, served = server
    bad = bytearray(MUUFL_GT.read_bytes())
    bad[200] ^= 0xFF
    serve(served, "t/gt.mat", bytes(bad))
    with pytest.raises(DataError) as ei:
        dl.download_dataset("toy", tmp_path, sources=table(url), only=["gt.mat"], progress=False)
    e = ei.value
    assert e.field == "sha256" and e.expected == sha256(MUUFL_GT)
    assert e.found.startswith(hashlib.sha256(bytes(bad)).hexdigest())
    assert "gt.mat" in str(e.file) and "fix:" in str(e)
    assert not (tmp_path / "t/gt.mat").exists()
    assert not (tmp_path / "t/gt.mat.part").exists()


def test_wrong_announced_size_is_refused_before_download(server, tmp_path):
    url, httpd, served = server
    serve(served, "t/MGMNet/TRLabel.mat", b"<html>an error page</html>")
    with pytest.raises(DataError, match="announces 26 bytes, expected 1170") as ei:
        dl.download_dataset("toy", tmp_path, sources=table(url), only=["MGMNet/TRLabel.mat"], progress=False)
    assert "--mirror" in str(ei.value) and len(httpd.log) == 1  # a wrong file is not retried
    assert not (tmp_path / "t/MGMNet/TRLabel.mat").exists()


def test_wrong_file_already_at_target_is_reported_not_overwritten(server, tmp_path):
    url, httpd, _ = server
    target = tmp_path / "t/gt.mat"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not the file")
    st = dl.download_dataset(
        "toy", tmp_path, sources=table(url), only=["gt.mat"], progress=False, strict=False
    )
    assert st[0].status == "failed" and "does not match" in st[0].message
    assert target.read_bytes() == b"not the file" and httpd.log == []


def test_network_failure_names_url_and_suggests_mirror(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = {"datasets": {"toy": {"files": [{"path": "a.mat", "urls": [f"http://127.0.0.1:{port}/a.mat"]}]}}}
    with pytest.raises(DataError) as ei:
        dl.download_dataset("toy", tmp_path, sources=src, retries=2, timeout=2, progress=False)
    msg = str(ei.value)
    assert f"http://127.0.0.1:{port}/a.mat" in msg and "--mirror" in msg
    assert "could not download" in msg


def test_404_then_mirror_url_falls_through(server, tmp_path):
    url, httpd, served = server
    serve(served, "mirror/gt.mat", MUUFL_GT)
    src = table(url)
    src["datasets"]["toy"]["files"][1]["urls"] = [f"{url}/gone/gt.mat", f"{url}/mirror/gt.mat"]
    st = dl.download_dataset("toy", tmp_path, sources=src, only=["gt.mat"], progress=False)
    assert st[0].status == "ok" and st[0].url.endswith("/mirror/gt.mat")
    assert [p for p, _ in httpd.log] == ["/gone/gt.mat", "/mirror/gt.mat"]  # 404 is not retried


def test_unknown_dataset_lists_valid_names(tmp_path, capsys):
    with pytest.raises(ConfigError) as ei:
        dl.download_dataset("trentoo", tmp_path)
    msg = str(ei.value)
    for name in ("trento", "muufl", "houston2013", "augsburg", "salinas_a", "ucm_captions", "aid_minitest"):
        assert name in msg
    assert "did you mean 'trento'" in msg
    assert cli.main(["trentoo", "--root", str(tmp_path)]) == 1
    assert "bigearthnet_s1s2" in capsys.readouterr().err


def test_unknown_only_file_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"TRLabel\.mat"):
        dl.download_dataset("trento", tmp_path, only=["TRLabel.mat"])  # needs its folder: MGMNet/TRLabel.mat


def test_manual_file_prints_instructions_then_verifies_hand_placed_copy(server, tmp_path, capsys):
    url, _, served = server
    serve(served, "t/gt.mat", MUUFL_GT)
    manual = {
        "path": "hsi/Italy_hsi.mat",
        "sha256": sha256(TRLABEL),
        "manual": "On request from L. Bruzzone (University of Trento).",
    }
    src = table(url, files=[manual])
    src["datasets"]["toy"]["files"] = src["datasets"]["toy"]["files"][1:]
    import yaml

    (tmp_path / "src.yaml").write_text(yaml.safe_dump(src))
    root = tmp_path / "root"
    argv = ["toy", "--root", str(root), "--sources", str(tmp_path / "src.yaml"), "--no-progress"]
    assert cli.main(argv) == 2  # nothing failed, but a file must still be placed by hand
    out = capsys.readouterr().out
    target = (root / "t/hsi/Italy_hsi.mat").resolve()
    assert f"place the file by hand at: {target}" in out and "L. Bruzzone" in out
    assert re.search(r"t/hsi/Italy_hsi.mat\s+manual", out) and re.search(r"t/gt.mat\s+ok", out)

    target.parent.mkdir(parents=True)
    shutil.copyfile(TRLABEL, target)
    assert cli.main([*argv, "--verify-only"]) == 0
    assert re.search(r"t/hsi/Italy_hsi.mat\s+verified", capsys.readouterr().out)
    assert [s.status for s in dl.verify_dataset("toy", root, sources=src)] == ["verified", "verified"]


def test_unverified_file_and_require_hash(server, tmp_path):
    url, httpd, served = server
    serve(served, "t/x.bin", b"no published hash for me")
    src = {"datasets": {"toy": {"dir": "t", "files": [{"path": "x.bin", "urls": [f"{url}/t/x.bin"]}]}}}
    with pytest.raises(DataError, match="require-hash"):
        dl.download_dataset("toy", tmp_path, sources=src, require_hash=True, progress=False)
    assert httpd.log == []  # refused before downloading anything
    st = dl.download_dataset("toy", tmp_path, sources=src, progress=False)
    assert st[0].status == "unverified"
    assert st[0].sha256 == hashlib.sha256(b"no published hash for me").hexdigest()
    assert st[0].sha256 in st[0].message  # printed so the user can record it
    assert dl.verify_dataset("toy", tmp_path, sources=src)[0].status == "unverified"
    assert dl.verify_dataset("toy", tmp_path, sources=src, require_hash=True)[0].status == "failed"


def test_real_table_with_mirror_downloads_verified_muufl_files(server, tmp_path, capsys):
    url, httpd, served = server
    serve(served, "muufl/gt.mat", MUUFL_GT)
    serve(served, "muufl/LiDAR.mat", MUUFL_LIDAR)
    argv = [
        "muufl",
        "--root",
        str(tmp_path),
        "--mirror",
        url,
        "--only",
        "gt.mat",
        "--only",
        "muufl/LiDAR.mat",
    ]
    assert cli.main([*argv, "--no-progress"]) == 0
    assert sha256(tmp_path / "muufl/LiDAR.mat") == sha256(MUUFL_LIDAR)
    out = capsys.readouterr().out
    assert re.search(r"muufl/gt.mat\s+ok", out) and re.search(r"muufl/LiDAR.mat\s+ok", out)
    assert sorted(p for p, _ in httpd.log) == ["/muufl/LiDAR.mat", "/muufl/gt.mat"]
    st = dl.verify_dataset("muufl", tmp_path, only=["gt.mat", "LiDAR.mat"])
    assert [s.status for s in st] == ["verified", "verified"]


def test_zip_is_unpacked_after_verification(server, tmp_path):
    url, _, served = server
    buf = tmp_path / "a.zip"
    with zipfile.ZipFile(buf, "w") as z:
        z.write(MUUFL_GT, "inner/gt.mat")
    serve(served, "t/a.zip", buf)
    entry = {"path": "a.zip", "urls": [f"{url}/t/a.zip"], "sha256": sha256(buf), "unpack": True}
    src = {"datasets": {"toy": {"dir": "t", "files": [entry]}}}
    st = dl.download_dataset("toy", tmp_path / "r", sources=src, progress=False)
    assert st[0].status == "ok"
    assert sha256(tmp_path / "r/t/inner/gt.mat") == sha256(MUUFL_GT)


def test_sources_table_rejects_unsafe_paths_and_bad_hashes():
    with pytest.raises(ConfigError, match="unsafe path"):
        dl.load_sources({"datasets": {"x": {"files": [{"path": "../evil", "urls": ["http://h/e"]}]}}})
    with pytest.raises(ConfigError, match="malformed checksum"):
        dl.load_sources({"datasets": {"x": {"files": [{"path": "a", "urls": ["u"], "sha256": "abc"}]}}})
    with pytest.raises(ConfigError, match="neither a URL nor manual"):
        dl.load_sources({"datasets": {"x": {"files": [{"path": "a"}]}}})


def test_packaged_table_matches_shared_data_and_reference_hashes():
    """Every measured hash equals the shared copy; the Trento/MACL entries carry the published hashes."""
    import json

    table = dl.load_sources()
    names = (
        "trento muufl houston2013 augsburg salinas_a indian_pines ucm_captions aid_minitest bigearthnet_s1s2 rsscn7 "
        "aid ucm"
    )
    assert list(table) == names.split()
    shared_dir = {
        "augsburg": "augsburg_labels",
        "salinas_a": "hsi_small/salinasA",
        "aid_minitest": "aid_text_minitest",
    }
    checked = 0
    for name, specs in table.items():
        for s in specs:
            assert s.urls or s.manual, s.relpath
            local = SHARED / shared_dir.get(name, name) / s.path
            if s.sha256 and local.is_file() and "measured" in (s.hash_source or ""):
                assert s.size in (None, local.stat().st_size), s.relpath
                if local.stat().st_size < 3_000_000:
                    assert sha256(local) == s.sha256, s.relpath
                checked += 1
    assert checked >= 420  # 400 AID files + the Trento / MUUFL / Houston / Augsburg / Salinas / UCM files

    trento = {s.path: s for s in table["trento"]}
    ref = json.loads((SHARED / "hsi_small/REFERENCE_HASHES_trento.json").read_text())
    for f in ("Italy_hsi.mat", "Italy_lidar.mat", "allgrd.mat"):
        assert trento[f"tyust-dayu/{f}"].sha256 == ref[f]
    lfs = json.loads((SHARED / "hsi_small/LFS_pointers_MACL.json").read_text())
    for name, folder in (("trento", "Trento"), ("muufl", "MUUFL"), ("houston2013", "Houston")):
        spec = {s.path: s for s in table[name]}["MACL/HSI.mat"]
        assert (spec.sha256, spec.size) == (lfs[f"datasets/{folder}/HSI.mat"]["lfs_sha256"],
                                            lfs[f"datasets/{folder}/HSI.mat"]["size"])  # fmt: skip
        assert spec.urls[0].startswith("https://media.githubusercontent.com/media/zlyrs1/MACL/")
    ip = {s.path: s for s in table["indian_pines"]}  # the UPV/EHU files, hashes from the pack's README
    readme = (SHARED / "indian_pines/README.md").read_text()
    for f in ("Indian_pines_corrected.mat", "Indian_pines_gt.mat"):
        assert ip[f].urls[0].startswith("http://www.ehu.eus/ccwintco/uploads/") and ip[f].urls[0].endswith(f)
        assert ip[f].sha256 in readme and ip[f].relpath == f"indian_pines/{f}"
    manual_only = {s.relpath for specs in table.values() for s in specs if not s.urls}
    assert manual_only == {"augsburg/data_SAR_HR.mat", "augsburg/data_DSM.mat", "aid/AID.zip"}


def test_list_prints_datasets_and_files(tmp_path, capsys):
    assert cli.main(["--list", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"data root: {tmp_path.resolve()} (from --root)" in out
    assert "trento  (" in out and "tyust-dayu/Italy_hsi.mat  [sha256" in out
    assert "data_SAR_HR.mat  [no checksum, ?, manual only, absent]" in out
    assert cli.main(["--list", "muufl", "--root", str(tmp_path)]) == 0
    assert "trento" not in capsys.readouterr().out


def test_list_gives_size_source_licence_and_presence_without_network(tmp_path, monkeypatch, capsys):
    """Every packaged dataset with its size, homepage, licence and what is under the root; no socket opened."""
    import socket
    import urllib.request

    def no_network(*a, **k):
        raise AssertionError("rsmg download --list opened a connection")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    root = tmp_path / "root"
    (root / "trento/MGMNet").mkdir(parents=True)
    shutil.copyfile(TRLABEL, root / "trento/MGMNet/TRLabel.mat")  # right name and size: present
    (root / "trento/MGMNet/TSLabel.mat").write_bytes(b"x")  # right name, wrong size
    (root / "trento/MGMNet/LiDAR.mat.part").write_bytes(b"x")  # an interrupted download
    assert cli.main(["--list", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    info = dl.dataset_info()
    table = dl.load_sources()
    assert list(info) == list(table)
    for name, meta in info.items():
        assert meta.homepage and meta.homepage.startswith("http") and meta.licence, name
        assert f"\n{name}  ({len(table[name])} files, folder " in out
        assert f"  source: {meta.homepage}\n  licence: {meta.licence}\n" in out
    assert "bigearthnet_s1s2" in out and "Community Data License Agreement - Permissive 1.0" in out
    trento = out[out.index("\ntrento  (") : out.index("\nmuufl  (")]
    head = trento.splitlines()[1]
    known = sum(s.size or 0 for s in table["trento"] if not s.optional)
    unknown = sum(s.size is None for s in table["trento"] if not s.optional)
    assert (
        f"; {cli._human(known)} + {unknown} file(s) of unknown size; 1 of 9 present under {root / 'trento'})"
        in head
    )
    assert re.search(r"MGMNet/TRLabel.mat  \[sha256, [0-9.]+ KB, present\]", trento)
    assert "MGMNet/TSLabel.mat  [sha256, 3.3 KB, present, wrong size]" in trento
    assert "MGMNet/LiDAR.mat  [sha256, 285.1 KB, partial]" in trento
    assert "MACL/HSI.mat  [sha256, 11.5 MB, manual fallback, optional, absent]" in trento
    assert "muufl  (5 files, folder muufl/; " in out and "; none present under" in out


def test_dataset_licence_must_be_text(tmp_path):
    doc = table("http://127.0.0.1:9")
    doc["datasets"]["toy"]["licence"] = ["MIT"]
    with pytest.raises(ConfigError, match=r"datasets\.toy\.licence"):
        dl.dataset_info(doc)
    doc["datasets"]["toy"]["licence"] = "CC-BY-4.0"
    assert dl.dataset_info(doc)["toy"] == dl.DatasetInfo("toy", None, None, "CC-BY-4.0")


# ----------------------------------------------------------------------------------- CLI: labels, exit codes, root


def sources_file(tmp_path: Path, url: str = "http://127.0.0.1:9") -> Path:
    """`table(url)` as a YAML file for `--sources` (verify-only never opens the URLs)."""
    import yaml

    path = tmp_path / "src.yaml"
    path.write_text(yaml.safe_dump(table(url)))
    return path


def place(root: Path, *which: str) -> None:
    """Put real copies of the toy table's files under `root`, as a finished download would."""
    for rel, src in (("t/MGMNet/TRLabel.mat", TRLABEL), ("t/gt.mat", MUUFL_GT)):
        if rel in which:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, root / rel)


def test_verify_only_labels_present_files_verified_in_table_and_summary(tmp_path, capsys):
    root = tmp_path / "root"
    place(root, "t/MGMNet/TRLabel.mat", "t/gt.mat")
    argv = ["toy", "--root", str(root), "--sources", str(sources_file(tmp_path)), "--verify-only"]
    assert cli.main(argv) == cli.EXIT_OK == 0
    out = capsys.readouterr().out
    assert "skipped" not in out  # nothing was skipped: each file was read and its checksum checked
    assert re.search(r"t/MGMNet/TRLabel.mat\s+verified", out) and re.search(r"t/gt.mat\s+verified", out)
    assert "toy: 2 verified (present, checksum ok)\n" in out
    assert "missing" not in out


def test_verify_only_missing_file_exits_3_and_prints_the_command_that_fetches_it(server, tmp_path, capsys):
    url, httpd, served = server
    serve(served, "t/MGMNet/TRLabel.mat", TRLABEL)
    src = sources_file(tmp_path, url)
    root = tmp_path / "root"
    place(root, "t/gt.mat")
    assert (
        cli.main(["toy", "--root", str(root), "--sources", str(src), "--verify-only"])
        == cli.EXIT_MISSING
        == 3
    )
    out = capsys.readouterr().out
    assert "toy: 1 verified (present, checksum ok); 1 missing (absent, `rsmg download` fetches it)" in out
    assert f"1 file(s) missing under {root.resolve()}:\n  t/MGMNet/TRLabel.mat\n" in out
    cmd = shlex.join(["rsmg", "download", "toy", "--root", str(root.resolve()), "--sources", str(src)])
    assert f"fetch them with: {cmd}\n" in out
    assert httpd.log == []  # --verify-only never touches the network

    # the printed command is the one that fetches it
    assert cli.main([*shlex.split(cmd)[2:], "--no-progress"]) == cli.EXIT_OK
    assert sha256(root / "t/MGMNet/TRLabel.mat") == sha256(TRLABEL)
    assert cli.main(["toy", "--root", str(root), "--sources", str(src), "--verify-only"]) == cli.EXIT_OK


def test_a_wrong_file_outranks_a_missing_one(tmp_path, capsys):
    root = tmp_path / "root"
    (root / "t").mkdir(parents=True)
    (root / "t/gt.mat").write_bytes(b"not the file")
    argv = ["toy", "--root", str(root), "--sources", str(sources_file(tmp_path)), "--verify-only"]
    assert cli.main(argv) == cli.EXIT_FAILED == 1
    out = capsys.readouterr().out
    assert "1 failed" in out and "1 missing" in out and "t/MGMNet/TRLabel.mat" in out


def test_help_documents_every_exit_status_and_usage_errors_do_not_collide(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for code, words in (
        (cli.EXIT_OK, "every selected file is present"),
        (cli.EXIT_FAILED, "a file failed"),
        (cli.EXIT_MANUAL, "nothing failed, but files must still be placed by hand"),
        (cli.EXIT_MISSING, "--verify-only: nothing failed, but files are missing"),
    ):
        assert re.search(rf"^  {code}  {re.escape(words)}", out, re.M), code
    assert "$RSMG_DATA_ROOT" in out
    # argparse would exit 2, which here means "place files by hand"
    assert cli.main(["--no-such-flag"]) == cli.EXIT_FAILED
    assert cli.main([]) == cli.EXIT_FAILED and "NAME is required" in capsys.readouterr().err


def test_root_defaults_like_the_data_modules_and_is_printed(tmp_path, monkeypatch, capsys):
    from rsmg.data import catalog

    src = str(sources_file(tmp_path))
    env_root = tmp_path / "env_root"
    place(env_root, "t/MGMNet/TRLabel.mat", "t/gt.mat")
    monkeypatch.chdir(tmp_path)

    monkeypatch.setenv("RSMG_DATA_ROOT", str(env_root))
    assert catalog.resolve_root() == resolve_root_with_origin()[0] == env_root
    assert cli.main(["toy", "--sources", src, "--verify-only"]) == cli.EXIT_OK
    assert f"data root: {env_root.resolve()} (from $RSMG_DATA_ROOT)\n" in capsys.readouterr().out

    assert cli.main(["toy", "--root", "elsewhere", "--sources", src, "--verify-only"]) == cli.EXIT_MISSING
    assert f"data root: {(tmp_path / 'elsewhere').resolve()} (from --root)\n" in capsys.readouterr().out

    monkeypatch.delenv("RSMG_DATA_ROOT")
    assert catalog.resolve_root() == resolve_root_with_origin()[0] == Path("data")
    assert cli.main(["toy", "--sources", src, "--verify-only"]) == cli.EXIT_MISSING
    out = capsys.readouterr().out
    assert (
        f"data root: {(tmp_path / 'data').resolve()} (from default ./data; set --root or $RSMG_DATA_ROOT"
        in out
    )
    assert not (tmp_path / "data").exists()  # --verify-only creates nothing


def test_verify_only_on_the_shared_trento_files(capsys):
    """The reviewed command: `rsmg download trento --root <shared data> --verify-only`."""
    rc = cli.main(["trento", "--root", str(SHARED), "--verify-only"])
    out = capsys.readouterr().out
    specs = [s for s in dl.load_sources()["trento"] if not s.optional]
    absent = [s.relpath for s in specs if not s.target(SHARED).exists()]
    assert rc == (cli.EXIT_MISSING if absent else cli.EXIT_OK)
    assert "skipped" not in out and re.search(r"trento/MGMNet/TRLabel.mat\s+verified", out)
    assert f"{len(specs) - len(absent)} verified (present, checksum ok)" in out
    for rel in absent:
        assert f"\n  {rel}\n" in out
    if absent:
        assert f"fetch them with: rsmg download trento --root {SHARED}\n" in out
