"""Who may replace what: the write-side rules on access groups."""

from __future__ import annotations

import pytest

from keel.errors import DocumentForbidden, WidensAccess
from keel.tenancy import check_replacement, holds


def test_a_writer_holds_its_groups_and_everyones() -> None:
    assert holds(["hr"], ["hr", "all"]) and holds([], ["all"])
    assert not holds([], ["hr"]) and not holds(["eng"], ["hr", "eng"])


@pytest.mark.parametrize(
    ("old", "new", "writer", "error"),
    [
        (["all"], ["hr"], [], None),  # narrowing an open document is fine
        (["all"], ["all"], [], None),
        (["hr"], ["hr"], ["hr"], None),
        (["hr", "eng"], ["hr"], ["hr", "eng"], None),
        (["hr"], ["all"], [], DocumentForbidden),  # may not overwrite what it cannot read
        (["hr"], ["all"], ["hr"], WidensAccess),  # would open an HR document to everyone
        (["hr"], ["hr", "eng"], ["hr", "eng"], WidensAccess),
        (["hr", "eng"], ["hr"], ["hr"], DocumentForbidden),
    ],
)
def test_replacements(old: list[str], new: list[str], writer: list[str], error: type[Exception] | None) -> None:
    if error is None:
        check_replacement(old, new, writer)
    else:
        with pytest.raises(error):
            check_replacement(old, new, writer)
