"""A cached project page read back as releases: newest first, each release's files made when
first asked for (resolution reads a handful of the releases a page lists)."""

from __future__ import annotations

import datetime as dt

from packaging.utils import canonicalize_name
from packaging.version import Version

from envspec.index.releases import Releases, of_artifacts
from envspec.index.simple import dump_listing, load_releases, parse_filename
from envspec.model import Artifact, CoreMetadata, Yank


def artifact(filename: str, **kw: object) -> Artifact:
    return Artifact(
        filename=filename, url=f"https://files.example/{filename}", kind="wheel", **kw
    )


PAGE = [
    artifact("foo-1.0-py3-none-any.whl", sha256="a" * 64, size=10),
    artifact("foo-2.0-cp311-cp311-manylinux_2_28_x86_64.whl", requires_python=">=3.9"),
    artifact("foo-10.0rc1-py3-none-any.whl", yanked=Yank.YANKED, yanked_reason="broken"),
    artifact("foo_bar-5.0-py3-none-any.whl"),  # another project's file on the page
    artifact("foo-2.0-py3-none-any.whl", metadata=CoreMetadata.SERVED, metadata_sha256="b" * 64),
    artifact(
        "foo-1.0.post1-py3-none-any.whl",
        upload_time=dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
    ),
    artifact("not-a-distribution.txt"),
]


def test_a_cached_page_reads_back_as_its_releases_newest_first() -> None:
    releases = load_releases(dump_listing(PAGE), canonicalize_name("foo"))
    assert releases is not None
    assert releases.order == tuple(map(Version, ["10.0rc1", "2.0", "1.0.post1", "1.0"]))
    # a release's files in page order, equal to the ones the page listed
    assert releases.files(Version("2.0")) == (PAGE[1], PAGE[4])
    assert list(releases.every()) == [PAGE[2], PAGE[1], PAGE[4], PAGE[5], PAGE[0]]
    assert releases.files(Version("3.0")) == ()
    assert parse_filename("foo_bar-5.0-py3-none-any.whl") == (
        "foo-bar", Version("5.0"), "wheel"
    )


def test_a_page_the_index_does_not_have_reads_back_as_none() -> None:
    assert load_releases(dump_listing(None), canonicalize_name("foo")) is None


def test_a_release_is_made_once_and_only_when_asked_for() -> None:
    made: list[str] = []

    def make(filename: str) -> Artifact:
        made.append(filename)
        return artifact(filename)

    releases = Releases(
        {Version("1.0"): ["foo-1.0-py3-none-any.whl"], Version("2.0"): ["foo-2.0.tar.gz"]}, make
    )
    assert made == []
    assert releases.order == (Version("2.0"), Version("1.0"))
    first = releases.files(Version("1.0"))
    assert releases.files(Version("1.0")) is first
    assert made == ["foo-1.0-py3-none-any.whl"]


def test_parsed_files_group_by_release_of_the_named_project() -> None:
    identify = lambda f: (p[:2] if (p := parse_filename(f)) else None)  # noqa: E731
    releases = of_artifacts(PAGE, identify, "foo-bar")
    assert releases.order == (Version("5.0"),)
    assert releases.files(Version("5.0")) == (PAGE[3],)
    assert not of_artifacts(PAGE, identify, "baz")
