"""Quotas per owner, checked when a search is submitted (settings ``quota_active`` and
``quota_daily_cost``, environment ``ENAS_QUOTA_ACTIVE`` and ``ENAS_QUOTA_DAILY_COST``; 0: no limit).

* active: the owner's searches ``queued``, ``running`` or ``pending`` at once; a new one over it
  is refused until one of them finishes (``Retry-After``: `ACTIVE_RETRY_S`, an end cannot be foreseen).
* daily cost: the estimated costs (``service.cost``) of the searches the owner submitted in the last
  24 hours plus the new one; over it, ``Retry-After`` is when enough of the oldest leave the window.
  A search whose cost alone is above the quota can never be submitted: 422, not 429.

Two submissions at the same instant may both pass (the check reads, then the insert writes).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from service.errors import InvalidInput, OverQuota
from service.settings import Settings
from service.store import Store

DAY = timedelta(hours=24)
ACTIVE_RETRY_S = 60


def check_quotas(store: Store, settings: Settings, *, owner: str, cost: float, now: datetime) -> None:
    """Raise OverQuota (429) when submitting a search of estimated ``cost`` would put ``owner`` over
    a quota, InvalidInput (422) when the cost alone is above the daily one."""
    if not settings.quota_active and not settings.quota_daily_cost:
        return
    active, recent = store.owner_usage(owner=owner, since=now - DAY)
    if settings.quota_active and active >= settings.quota_active:
        raise OverQuota(
            f"{owner} has {active} searches queued or running (or pending), the limit ENAS_QUOTA_ACTIVE = "
            f"{settings.quota_active}: submit again when one of them has finished",
            retry_after_s=ACTIVE_RETRY_S,
        )
    limit = settings.quota_daily_cost
    if not limit:
        return
    if cost > limit:
        raise InvalidInput(
            f"the search's estimated cost, {cost:.3g} MACs, is above the daily quota "
            f"ENAS_QUOTA_DAILY_COST = {limit:.3g} by itself",
            field="cost",
        )
    spent = sum(c for _, c in recent)
    if spent + cost <= limit:
        return
    frees = now + DAY
    for created, c in recent:  # oldest first: when do enough of them leave the 24-hour window?
        spent -= c
        if spent + cost <= limit:
            frees = created + DAY
            break
    wait = max(1, math.ceil((frees - now).total_seconds()))
    raise OverQuota(
        f"{owner} submitted searches of {sum(c for _, c in recent):.3g} MACs in the last 24 hours; with "
        f"this one ({cost:.3g}) that is above the limit ENAS_QUOTA_DAILY_COST = {limit:.3g}; it frees at "
        f"{frees.isoformat(timespec='seconds')} (in {wait} s)",
        retry_after_s=wait,
    )
