"""Which Requires-Dist lines a candidate wants (`resolve.lines`): the same lines, in the same
order, as asking each line's marker, with each marker decided once per set of extras."""

from __future__ import annotations

from collections import Counter

from packaging.markers import Marker
from packaging.utils import NormalizedName

from envspec.index.requires import requirement
from envspec.resolve.lines import LineIndex
from envspec.targets import make_target

LINUX = make_target("linux-x86_64", "3.11")
PLAIN: frozenset[NormalizedName] = frozenset()
COLAB = frozenset({NormalizedName("colab-new")})

# Shaped like an unsloth release: plain lines, lines under one extra, a line under two, and
# markers that use `extra` in other ways; several lines share each marker.
RELEASE_A = [
    "packaging",
    "tyro; sys_platform == 'linux'",
    "xformers; extra == 'colab-new'",
    "torch<2.5; extra == 'cu121'",
    "trl; extra == 'colab-new'",
    "bitsandbytes; sys_platform == 'win32'",
    "peft; extra == 'colab-new' or extra == 'cu121'",
    "wandb; extra != 'colab-new'",
    "numpy<2; extra == 'colab-new' and sys_platform == 'linux'",
    "triton; sys_platform == 'linux'",
]
# The next release: other versions, the same markers in the same order.
RELEASE_B = [
    line.replace("torch<2.5", "torch<2.6").replace("numpy<2", "numpy<3") for line in RELEASE_A
]


def _decide(calls: Counter[tuple[int, frozenset[NormalizedName]]]):  # type: ignore[no-untyped-def]
    """`Provider._wants` on linux, counting the questions."""

    def decide(marker: Marker | None, extras: frozenset[NormalizedName]) -> bool:
        calls[(id(marker), extras)] += 1
        if marker is None:
            return not extras
        plain = LINUX.evaluate(marker)
        return plain if not extras else not plain and LINUX.evaluate(marker, extras)

    return decide


def _line_by_line(lines: list[str], extras: frozenset[NormalizedName]) -> list[str]:
    out = []
    for line in lines:
        marker = requirement(line).marker
        if marker is None:
            wanted = not extras
        elif not extras:
            wanted = LINUX.evaluate(marker)
        else:
            wanted = not LINUX.evaluate(marker) and LINUX.evaluate(marker, extras)
        if wanted:
            out.append(line)
    return out


def test_wanted_lines_are_the_line_by_line_answers_in_order() -> None:
    index = LineIndex(decide=_decide(Counter()))
    requires = tuple(map(requirement, RELEASE_A))
    for extras in (PLAIN, COLAB, frozenset({NormalizedName("cu121")})):
        picked = [RELEASE_A[i] for i in index.wanted(requires, extras)]
        assert picked == _line_by_line(RELEASE_A, extras), extras
    assert [RELEASE_A[i] for i in index.wanted(requires, PLAIN)] == [
        "packaging",
        "tyro; sys_platform == 'linux'",
        "wandb; extra != 'colab-new'",
        "triton; sys_platform == 'linux'",
    ]
    assert [RELEASE_A[i] for i in index.wanted(requires, COLAB)] == [
        "xformers; extra == 'colab-new'",
        "trl; extra == 'colab-new'",
        "peft; extra == 'colab-new' or extra == 'cu121'",
        "numpy<2; extra == 'colab-new' and sys_platform == 'linux'",
    ]


def test_each_marker_is_decided_once_per_extras_across_releases() -> None:
    calls: Counter[tuple[int, frozenset[NormalizedName]]] = Counter()
    index = LineIndex(decide=_decide(calls))
    a, b = tuple(map(requirement, RELEASE_A)), tuple(map(requirement, RELEASE_B))
    for requires in (a, b, a, b):
        for extras in (PLAIN, COLAB):
            index.wanted(requires, extras)
    distinct_markers = len({id(r.marker) for r in a})
    assert distinct_markers == 8  # ten lines, eight markers (None among them)
    assert len(calls) == 2 * distinct_markers
    assert set(calls.values()) == {1}
    # the second release's lines are its own, at the same positions
    assert [RELEASE_B[i] for i in index.wanted(b, COLAB)][-1] == (
        "numpy<3; extra == 'colab-new' and sys_platform == 'linux'"
    )


def test_lines_without_a_marker_or_any_line_at_all() -> None:
    index = LineIndex(decide=_decide(Counter()))
    assert index.wanted((), PLAIN) == ()
    requires = tuple(map(requirement, ["a", "b>=1", "c"]))
    assert index.wanted(requires, PLAIN) == (0, 1, 2)
    assert index.wanted(requires, COLAB) == ()
