"""How `scripts/test` splits the suite between its worker processes: every test runs exactly
once, in collection order, and the halves of a module that share a server stay together."""

from __future__ import annotations

from shards import group_of, shares

IDS = [
    "tests/unit/test_a.py::test_one",
    "tests/unit/test_a.py::test_two[x]",
    "tests/integration/test_b.py::test_one[stalled]",
    "tests/integration/test_b.py::test_one[garbage]",
    "tests/integration/test_c.py::test_one",
    "tests/browser/test_d.py::test_one[pinned]",
    "tests/browser/test_d.py::test_two[pinned]",
    "tests/browser/test_d.py::test_one[newest]",
    "tests/browser/test_e.py::test_one",
]


def test_every_test_runs_once_in_collection_order():
    for count in (1, 2, 3, 4, 20):
        split = shares(IDS, count, seconds={})
        assert len(split) == count
        assert sorted(i for share in split for i in share) == list(range(len(IDS)))
        assert all(share == sorted(share) for share in split)


def test_a_file_or_one_frontends_half_of_a_browser_file_is_never_split():
    assert group_of(IDS[2]) == group_of(IDS[3]) == "tests/integration/test_b.py"
    assert group_of(IDS[5]) == group_of(IDS[6]) == "tests/browser/test_d.py[pinned]"
    assert group_of(IDS[7]) == "tests/browser/test_d.py[newest]"
    for share in shares(IDS, 3, seconds={}):
        groups = {group_of(IDS[i]) for i in share}
        assert all(group_of(nodeid) not in groups or i in share for i, nodeid in enumerate(IDS))


def test_recorded_seconds_balance_the_shares():
    seconds = {
        "tests/integration/test_b.py": 30.0,
        "tests/integration/test_c.py": 10.0,
        "tests/browser/test_d.py[pinned]": 20.0,
        "tests/browser/test_d.py[newest]": 20.0,
        "tests/browser/test_e.py": 10.0,
    }  # and test_a.py, not recorded: guessed at 0.1 s per test
    loads = [
        round(sum(seconds.get(group, 0.1) for group in {group_of(IDS[i]) for i in share}), 1)
        for share in shares(IDS, 2, seconds=seconds)
    ]
    # the longest first, each to the shorter share: 30 | 20, 20 | +10 | +10 | + test_a.py
    assert loads == [50.0, 40.1]


def test_without_recorded_seconds_a_browser_file_outweighs_unit_tests():
    first, second = shares(IDS[:2] + IDS[-1:], 2, seconds={})
    assert [len(first), len(second)] == [1, 2]  # the browser test alone, the unit tests together
