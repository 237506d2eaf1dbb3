"""A cached project page read back as releases: newest first, each release's files made when
first asked for (resolution reads a handful of the releases a page lists)."""

from __future__ import annotations

import datetime as dt

from packaging.utils import canonicalize_name
from packaging.version import Version

from envspec.index.releases import (
    Releases,
    dump_listing,
    load_listing,
    load_releases,
    of_artifacts,
)
from envspec.index.simple import parse_filename
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
    assert list(releases.versions()) == list(map(Version, ["10.0rc1", "2.0", "1.0.post1", "1.0"]))
    # a release's files in page order, equal to the ones the page listed
    assert releases.files(Version("2.0")) == (PAGE[1], PAGE[4])
    assert list(releases.every()) == [PAGE[2], PAGE[1], PAGE[4], PAGE[5], PAGE[0]]
    assert releases.files(Version("3.0")) == ()
    assert parse_filename("foo_bar-5.0-py3-none-any.whl") == (
        "foo-bar", Version("5.0"), "wheel"
    )


def test_a_cached_page_reads_back_whole() -> None:
    every = load_listing(dump_listing(PAGE))
    assert every is not None and sorted(every, key=PAGE.index) == PAGE
    assert load_listing(dump_listing(PAGE), lambda f: f.startswith("foo_bar")) == [PAGE[3]]


def test_a_page_the_index_does_not_have_reads_back_as_none() -> None:
    assert load_releases(dump_listing(None), canonicalize_name("foo")) is None
    assert load_listing(dump_listing(None)) is None


def test_a_release_is_made_once_and_versions_are_parsed_as_far_as_walked() -> None:
    made: list[int] = []

    def files_of(i: int) -> tuple[Artifact, ...]:
        made.append(i)
        return (artifact(f"foo-{50 - i}.0-py3-none-any.whl"),)

    releases = Releases([f"{v}.0" for v in range(50, 0, -1)], files_of)
    assert made == []
    walk = releases.versions()
    assert [next(walk), next(walk)] == [Version("50.0"), Version("49.0")]
    assert len(releases._versions) == 8  # one chunk parsed, not fifty versions
    first = releases.files(Version("49.0"))
    assert releases.files(Version("49.0")) is first
    assert made == [1]
    assert releases.files(Version("3.0"))[0].filename == "foo-3.0-py3-none-any.whl"
    assert releases.files(Version("0.5")) == ()
    assert len(list(releases.versions())) == 50


def test_parsed_files_group_by_release_of_the_named_project() -> None:
    releases = of_artifacts(PAGE, canonicalize_name("foo-bar"))
    assert list(releases.versions()) == [Version("5.0")]
    assert releases.files(Version("5.0")) == (PAGE[3],)
    assert not of_artifacts(PAGE, canonicalize_name("baz"))


def test_an_exact_pin_is_looked_up_among_the_releases_of_its_public_version() -> None:
    page = [
        artifact(f"foo-{v}-py3-none-any.whl")
        for v in ["2.0", "1.0.0", "1.0+cu121", "1.0.post1", "1.0rc1", "1.0+cpu", "0.9"]
    ]
    releases = of_artifacts(page, canonicalize_name("foo"))
    # `==1.0` takes 1.0.0 (the same version) and 1.0's local variants; nothing else
    local = ["1.0+cu121", "1.0+cpu"]
    assert releases.same_public(Version("1.0")) == list(map(Version, [*local, "1.0.0"]))
    assert releases.same_public(Version("1.0.post1")) == [Version("1.0.post1")]
    assert releases.same_public(Version("3.0")) == []
    walk = ["2.0", "1.0.post1", *local, "1.0.0", "1.0rc1", "0.9"]
    assert list(releases.versions()) == list(map(Version, walk))  # the walk is as before
