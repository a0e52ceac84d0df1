"""Publish a run's forecasts under the dates' locks, with their manifest, last of all.

Order, and what a reader or `backfill.is_complete` sees if the run dies between two steps:

1. (before this module) every record is built and checked: counts, coverage, cost, the
   typed manifest. A failure here replaces nothing.
2. Take the lock of each affected date (sorted, so two runs cannot deadlock).
3. Read each affected date's object and compute the new one: a whole-day run replaces it;
   a range run keeps the rows of other origins and replaces only its own (read, merge,
   rewrite). Uniqueness of (station_code, origin_ts, horizon_h) and the Paris date of
   every origin are checked. Died here: nothing written.
4. Write `runs/<run_id>/attempts/<attempt>.json`, the attempt's manifest. Died here: the
   dates still hold the previous objects, each with its own manifest inside.
5. Write each date's Parquet with this manifest inside (key-value metadata). Died between
   two dates of a range: each object is whole and carries the manifests of its rows.
6. Rewrite `runs/<run_id>/manifest.json`. Died before it: the date holds this attempt,
   but `is_complete` wants manifest.json to name the attempt the date holds, so a
   backfill reruns the date (stages reused) instead of trusting it.
7. Release the locks. Died before it: the next run sees the holder is dead and takes over.

The lock is a conditional create (If-None-Match on S3, an atomic link locally) of
`forecasts/_locks/product=P/run_date=D.json`. Its owner is a process (host, boot, pid and start
time; velibcast/liveness.py says when it is dead) and a lease: a holder on this host is dead by
that rule, a holder on another host when its lease expired.
A takeover is itself a conditional create, of a marker named for the dead holder's token,
so of two runs taking over the same dead lock exactly one wins; the winner checks the lock
still holds the dead holder's bytes, deletes it and creates its own (conditionally again).
Releasing deletes the lock and the date's takeover markers: locks exist only while a run
publishes. Names starting with `_` are skipped by pyarrow, DuckDB and Athena, so locks never
show up as data.
"""

from __future__ import annotations

import json
import logging
import uuid
from contextlib import ExitStack, contextmanager
from datetime import date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from velibcast import constants as C
from velibcast import storage as st
from velibcast.errors import NotFound, TerminalError
from velibcast.flows import forecasts, manifest
from velibcast.liveness import Owner
from velibcast.run_records import Manifest, PartitionOutcome, to_json, validated
from velibcast.timeutil import UTC

log = logging.getLogger("velibcast.publish")


class PublishConflict(TerminalError):
    """Another live run holds the publish lock of this date."""


# ---------------------------------------------------------------- lock owner
def owner_body(run_id: str, now: datetime, lease_s: float = C.RUN_LOCK_TTL_S) -> dict:
    return {"run_id": run_id, **Owner.current().to_json(), "token": uuid.uuid4().hex, "acquired_at": now.isoformat(),
            "lease_expires_at": (now + timedelta(seconds=lease_s)).isoformat()}


def holder_is_dead(holder: dict, now: datetime) -> str | None:
    """Why the holder of a lock cannot be publishing any more, or None if it may be: on this host
    by velibcast.liveness's rule, on another by its lease."""
    owner = Owner.from_json(holder)
    if owner.checkable:
        return owner.dead_because()
    expires = holder.get("lease_expires_at")
    if expires is None:  # a lock written before leases: acquired_at + the TTL
        expires = (datetime.fromisoformat(holder["acquired_at"]) + timedelta(seconds=C.RUN_LOCK_TTL_S)).isoformat()
    if datetime.fromisoformat(expires) <= now:
        return f"its lease expired at {expires}"
    return None


def lock_uri(root: str, product: str, run_date: date) -> str:
    return st.join(root, "forecasts", "_locks", f"product={product}", f"run_date={run_date.isoformat()}.json")


def _takeover_prefix(root: str, product: str, run_date: date) -> str:
    return st.join(root, "forecasts", "_locks", f"product={product}", f"run_date={run_date.isoformat()}.takeover-")


def _takeover_uri(root: str, product: str, run_date: date, dead_token: str) -> str:
    return f"{_takeover_prefix(root, product, run_date)}{dead_token}.json"


@contextmanager
def publish_lock(storage: st.Storage, root: str, product: str, run_date: date, run_id: str,
                 now: datetime | None = None):
    now = now or datetime.now(UTC)
    uri = lock_uri(root, product, run_date)
    mine = owner_body(run_id, now)
    body = json.dumps(mine).encode()
    if not storage.put_if_absent(uri, body):
        try:
            raw = storage.read_bytes(uri)
        except NotFound:
            raw = None  # released between our attempt and the read: try once more
        if raw is not None:
            holder = json.loads(raw)
            dead = holder_is_dead(holder, now)
            if dead is None:
                raise PublishConflict(
                    f"run {holder['run_id']} (host {holder['host']}, pid {holder['pid']}) is publishing the "
                    f"{product} forecasts of {run_date} since {holder['acquired_at']}; wait for it, or delete {uri} "
                    "if that run is dead")
            token = holder.get("token") or f"{holder['pid']}-{holder['acquired_at']}".replace(":", "-")
            marker = _takeover_uri(root, product, run_date, token)
            if not storage.put_if_absent(marker, body):
                raise PublishConflict(f"another run is taking over the lock {uri} of dead run {holder['run_id']}; "
                                      "rerun later")
            log.warning("taking over the publish lock of %s %s from run %s (host %s): %s",
                        product, run_date, holder["run_id"], holder["host"], dead)
            # Only the marker's winner may delete the dead holder's lock, and only while it holds
            # those bytes: a taker that read them long ago finds another lock, or none, and stops.
            if _read_or_none(storage, uri) == raw:
                storage.delete(uri)
            if not storage.put_if_absent(uri, body):
                storage.delete(marker)
                raise PublishConflict(f"another run took the publish lock {uri} first; rerun later")
        elif not storage.put_if_absent(uri, body):
            raise PublishConflict(f"another run took the publish lock {uri} first; rerun later")
    try:
        yield mine
    finally:
        if _read_or_none(storage, uri) == body:
            # Markers of this date go too, ours and any a taker killed after its takeover left:
            # one recreated by a taker that read a dead holder long ago finds no dead lock to take.
            for m in list(storage.list(_takeover_prefix(root, product, run_date))):
                storage.delete(m.uri)
            storage.delete(uri)


def _read_or_none(storage: st.Storage, uri: str) -> bytes | None:
    try:
        return storage.read_bytes(uri)
    except NotFound:
        return None


# ---------------------------------------------------------------- publishing
def _ts_array(values) -> pa.Array:
    return pa.array(values, forecasts.SCHEMA.field("origin_ts").type)


def publish_run(storage: st.Storage, root: str, product: str, m: Manifest, table: pa.Table,
                origins: list[datetime], whole_days: bool, now: datetime | None = None) -> Manifest:
    """Publish `table` (this run's rows) and its manifest; the manifest as published.

    `origins` are every origin the run was asked for (a station absent at one of them has no
    row): in a range run (`whole_days` False) exactly those origins are replaced in each
    affected date's object and every other row is kept.
    """
    by_date = forecasts.split_by_date(table)
    origins_by_date: dict[date, list[datetime]] = {}
    for o in origins:
        origins_by_date.setdefault(forecasts.paris_date(o), []).append(o)
    stray = sorted(set(by_date) - set(origins_by_date))
    if stray:
        raise TerminalError(f"run {m.run_id}: rows on {stray[0]} outside the run's origins; nothing was published")
    with ExitStack() as locks:
        for d in sorted(origins_by_date):
            locks.enter_context(publish_lock(storage, root, product, d, m.run_id, now))
        planned: list[tuple[date, pa.Table, dict]] = []
        outcomes: list[PartitionOutcome] = []
        for d, its_origins in sorted(origins_by_date.items()):
            new = by_date.get(d, forecasts.empty_table())
            uri = forecasts.partition_uri(root, product, d)
            try:
                existing, carried = forecasts.read_partition_manifests(storage, root, product, d)
            except NotFound:
                existing, carried = None, {}
            if existing is None or whole_days:
                merged, kept_runs = new, []
                rows_before = rows_replaced = 0 if existing is None else existing.num_rows
                action = "created" if existing is None else "replaced"
            else:
                keep = existing.filter(pc.invert(pc.is_in(existing.column("origin_ts"), _ts_array(its_origins))))
                merged = forecasts.sort_rows(pa.concat_tables([keep.cast(forecasts.SCHEMA), new]))
                kept_runs = sorted(set(keep.column("run_id").to_pylist()) - {m.run_id})
                rows_before, rows_replaced, action = existing.num_rows, existing.num_rows - keep.num_rows, "merged"
            forecasts.check_partition(merged, d, uri)
            planned.append((d, merged, {r: carried[r] for r in kept_runs if r in carried}))
            outcomes.append(PartitionOutcome(run_date=d.isoformat(), uri=uri, action=action,
                                             rows_of_this_run=new.num_rows, rows_before=rows_before,
                                             rows_after=merged.num_rows, rows_replaced=rows_replaced,
                                             kept_runs=kept_runs))
        m.outputs.partitions = outcomes
        m.finished_at = (now or datetime.now(UTC)).isoformat()
        m = validated(m)  # a field missing or of the wrong type fails here, before any object is replaced
        manifest.write_attempt(storage, root, m)
        body = to_json(m)
        for d, merged, embedded in planned:
            forecasts.publish(storage, root, product, d, merged, {**embedded, m.run_id: body})
        manifest.write_current(storage, root, m)
    for po in outcomes:
        log.info("published %s: %s, %d rows of this run, %d rows replaced, %d rows now%s", po.run_date, po.action,
                 po.rows_of_this_run, po.rows_replaced, po.rows_after,
                 f" (kept rows of {', '.join(po.kept_runs)})" if po.kept_runs else "")
    return m
