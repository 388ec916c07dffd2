"""Whether a run picked up again still has the settings it was started with: one rule for training checkpoints, the
soft-label cache and `mine`'s state."""
from __future__ import annotations

from typing import Any, Collection, Mapping


def setting_changes(saved: Mapping[str, Any], now: Mapping[str, Any], *,
                    may_change: Collection[str] = ()) -> list[str]:
    """The keys whose values differ between the settings a run was started with (`saved`) and `now`, sorted; a key
    missing on one side counts as None there (a setting added since, at its None default, changes nothing). Keys in
    `may_change` are those a resume may change. An empty list means the resume matches."""
    return sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k) and k not in may_change)
