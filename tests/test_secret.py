"""envspec.secret: a URL's credentials are held by one value and taken out of text one way;
errors are located without changing the one raised."""

from __future__ import annotations

import pytest

from envspec.errors import EnvspecError, IndexError_
from envspec.index.auth import uv_url
from envspec.model import Index
from envspec.secret import SecretURL, UnsetVariable, expand, redact

SECRET = "s3cret"


def test_a_secret_url_shows_only_its_public_form() -> None:
    url = SecretURL(f"https://me:{SECRET}@repo.example/simple/")
    assert url.public == "https://repo.example/simple/"
    assert SECRET not in str(url) and SECRET not in repr(url) and SECRET not in f"{url}"
    assert url.secret == f"https://me:{SECRET}@repo.example/simple/"
    assert url.login() == ("me", SECRET)
    assert SecretURL("https://repo.example/").login() is None


def test_with_login_fills_in_only_a_url_without_one() -> None:
    bare = SecretURL("https://repo.example/simple/")
    assert bare.with_login("me", "p@ss word").secret == (
        "https://me:p%40ss%20word@repo.example/simple/"
    )
    assert bare.with_login("", "") is bare
    given = SecretURL("https://you:x@repo.example/simple/")
    assert given.with_login("me", SECRET) is given
    # what apply/uv.py gives uv for an index whose login is in the environment
    environ = {"ENVSPEC_INDEX_MY_INDEX_USERNAME": "me", "ENVSPEC_INDEX_MY_INDEX_PASSWORD": SECRET}
    index = Index(name="my.index", url="https://repo.example/")
    assert uv_url(index, environ).secret == f"https://me:{SECRET}@repo.example/"


def test_an_index_keeps_its_url_as_a_secret() -> None:
    index = Index(name="private", url=f"https://me:{SECRET}@repo.example/simple")
    assert index.location.public == "https://repo.example/simple/"
    assert SECRET not in repr(index)
    assert index == Index(name="private", url=f"https://me:{SECRET}@repo.example/simple/")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"GET https://me:{SECRET}@host/x failed", "GET https://host/x failed"),
        (f"a https://tok; x:{SECRET}@host/ b", "a https://host/ b"),  # mangled: over-redacted
        ("git+ssh://git@github.com/o/r.git", "git+ssh://git@github.com/o/r.git"),  # an account
        (f"ssh://git:{SECRET}@host/r", "ssh://host/r"),
        ("no url at all @ here", "no url at all @ here"),
        ("https://host/path@v1", "https://host/path@v1"),  # an `@` in the path is no userinfo
    ],
)
def test_redact(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_expand_names_the_missing_variable() -> None:
    assert expand("https://${USER}:${TOKEN}@h/", {"USER": "u", "TOKEN": "t"}) == "https://u:t@h/"
    with pytest.raises(UnsetVariable) as raised:
        expand("https://${TOKEN}@h/", {})
    assert raised.value.name == "TOKEN"


def test_with_context_returns_a_new_error_and_leaves_the_raised_one() -> None:
    kept = IndexError_(f"GET https://me:{SECRET}@h/x failed", hint="try again")
    located = kept.with_context("phases[1].requirements[0]")
    assert type(located) is IndexError_ and located is not kept
    assert str(located) == "phases[1].requirements[0]: GET https://h/x failed"
    assert located.hint == "try again" and located.exit_code == kept.exit_code
    assert kept.context == "" and str(kept) == "GET https://h/x failed"
    assert isinstance(located, EnvspecError)
