"""`medico data fetch`: download from a local HTTP server, verify, unpack atomically; nothing touches the internet."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from typer.testing import CliRunner

from medico.cli import app
from medico.data.fetch import ArchiveSpec, fetch_dataset
from medico.data.synthetic import write_synthetic_kvasir
from medico.download import DownloadError
from tests.http_server import closed_port_url, serve_folder


class Served(NamedTuple):
    folder: Path
    url: str


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """A folder served over HTTP on 127.0.0.1, and its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    with serve_folder(root) as (url, _):
        yield Served(root, url)


def build_archive(tmp_path: Path, archive: Path, count: int = 4, extra: dict[str, bytes] | None = None) -> str:
    """A zip laid out like the public one (``Kvasir-SEG/images``, ``.../masks``); returns its SHA-256."""
    folder = write_synthetic_kvasir(tmp_path / "source", count=count)
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                handle.write(path, "Kvasir-SEG/" + path.relative_to(folder).as_posix())
        for name, data in (extra or {}).items():
            handle.writestr(name, data)
    return hashlib.sha256(archive.read_bytes()).hexdigest()


def spec(url: str, pairs: int = 4, sha256: str | None = None) -> ArchiveSpec:
    return ArchiveSpec(name="tiny", url=url, folder="tiny-seg", pairs=pairs, sha256=sha256)


def test_fetch_downloads_verifies_by_pair_count_and_unpacks_into_place(served: Served, tmp_path: Path) -> None:
    build_archive(tmp_path, served.folder / "tiny.zip")
    seen: list[int] = []
    url = f"{served.url}/tiny.zip"
    result = fetch_dataset("tiny", tmp_path / "data", spec=spec(url), progress=lambda done, total: seen.append(done))
    assert result.downloaded and result.pairs == 4 and result.path == tmp_path / "data" / "tiny-seg"
    assert len(list((result.path / "images").iterdir())) == 4 and seen
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["tiny-seg"]  # no archive or staging left
    again = fetch_dataset("tiny", tmp_path / "data", spec=spec(f"{served.url}/absent.zip"))
    assert not again.downloaded and again.pairs == 4


def test_a_wrong_pair_count_or_checksum_leaves_nothing_behind(served: Served, tmp_path: Path) -> None:
    digest = build_archive(tmp_path, served.folder / "tiny.zip")
    with pytest.raises(DownloadError, match="expected 5 image/mask pairs, the archive holds 4"):
        fetch_dataset("tiny", tmp_path / "data", spec=spec(f"{served.url}/tiny.zip", pairs=5))
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        fetch_dataset("tiny", tmp_path / "data", spec=spec(f"{served.url}/tiny.zip", sha256="0" * 64))
    assert list((tmp_path / "data").iterdir()) == []
    result = fetch_dataset("tiny", tmp_path / "data", spec=spec(f"{served.url}/tiny.zip", pairs=5, sha256=digest))
    assert result.pairs == 4  # a known checksum replaces the pair count


def test_an_archive_with_a_member_leaving_its_folder_is_refused(served: Served, tmp_path: Path) -> None:
    build_archive(tmp_path, served.folder / "evil.zip", extra={"../../escaped.txt": b"x"})
    with pytest.raises(DownloadError, match="refused.*escaped.txt"):
        fetch_dataset("tiny", tmp_path / "data", spec=spec(f"{served.url}/evil.zip"))
    assert not (tmp_path / "escaped.txt").exists() and list((tmp_path / "data").iterdir()) == []


def test_an_unreachable_server_is_a_clean_error(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="could not download"):
        fetch_dataset("tiny", tmp_path / "data", spec=spec(closed_port_url("tiny.zip")))


def test_the_command_fetches_from_a_mirror_with_a_stated_checksum(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = build_archive(tmp_path, served.folder / "kvasir-seg.zip", count=3)
    monkeypatch.setenv("COLUMNS", "400")  # no line breaks inside the paths and phrases looked for
    target = tmp_path / "data"
    args = ["data", "fetch", "kvasir-seg", "--to", str(target), "--url", f"{served.url}/kvasir-seg.zip"]
    result = CliRunner().invoke(app, [*args, "--sha256", digest])
    assert result.exit_code == 0, result.output
    assert "3 image/mask pairs" in result.output and "--split random" in result.output
    assert (target / "kvasir-seg" / "masks").is_dir()

    (target / "kvasir-seg").rename(target / "old")
    refused = CliRunner().invoke(app, args)  # no checksum: Kvasir-SEG must hold 1,000 pairs
    assert refused.exit_code == 2 and "expected 1000 image/mask pairs" in refused.output
    unknown = CliRunner().invoke(app, ["data", "fetch", "imagenet", "--to", str(target)])
    assert unknown.exit_code == 2 and "kvasir-seg" in unknown.output
