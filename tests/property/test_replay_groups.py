"""How views are shared out between replay processes: every view replayed
exactly once, a view with a set-based replay alone, no more groups than
processes (beyond the set-based ones), and the same grouping every time
for the same views and processes (docs/operations.md#rebuilding-views)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from projections.rebuild import SET_BASED_REPLAYS, _replay_groups
from projections.registry import all_views, view_names
from projections.view import View

NAMES = view_names()


@given(
    chosen=st.sets(st.sampled_from(NAMES), min_size=1),
    processes=st.integers(min_value=1, max_value=16),
)
def test_every_view_is_replayed_once_in_at_most_one_group_per_process(
    chosen: set[str], processes: int
) -> None:
    views: list[View] = [view for view in all_views() if view.name in chosen]
    groups = _replay_groups(views, processes)

    replayed = [name for group in groups for name in group]
    assert sorted(replayed) == sorted(chosen)
    assert all(group for group in groups)
    set_based = [group for group in groups if set(group) & set(SET_BASED_REPLAYS)]
    assert all(len(group) == 1 for group in set_based)
    assert len(groups) <= max(processes, len(set_based) + 1)
    assert _replay_groups(views, processes) == groups
