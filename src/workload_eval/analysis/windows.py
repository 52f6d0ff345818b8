"""Per-window sums over event times for analysis.slices, each bit for bit with the plain
form it replaces (a stable argsort, sorted cumulative sums, pandas' groupby quantile):
time_slices runs for every point of a study, so the work is shared where the plain forms
would repeat it (one sort for several sums and subsets, two running sums to a pass).

Windows are given by their ``edges``; a time belongs to the window whose start it has
reached, the run's end (and anything after it, or NaN) to the last one, anything before
the first to the first.
"""

from __future__ import annotations

import math

import numpy as np


def stable_argsort(values: np.ndarray) -> np.ndarray:
    """``np.argsort(values, kind="stable")`` in ~2/3 of its time: the default sort, then
    its ties (equal values; NaN with NaN) back in row order by a stable sort of their run
    numbers, which numpy radix-sorts as 16-bit keys."""
    if len(values) > 1 << 16:
        return np.argsort(values, kind="stable")
    order = np.argsort(values)
    ranked = values[order]
    same = (ranked[1:] == ranked[:-1]) | (np.isnan(ranked[1:]) & np.isnan(ranked[:-1]))
    run = np.empty(len(values), dtype=np.uint16)
    run[order] = np.concatenate(([0], np.cumsum(~same)))
    return np.argsort(run, kind="stable")


class SortedColumn:
    """A column's stable sort, kept to hand out the stable sort of any subset of its rows
    without sorting again (a stable sort keeps a subset's relative order)."""

    def __init__(self, values: np.ndarray) -> None:
        self.order = stable_argsort(values)

    def of(self, rows: np.ndarray) -> np.ndarray:
        """``np.argsort(values[rows], kind="stable")``, for increasing row indices."""
        position = np.full(len(self.order), -1)
        position[rows] = np.arange(len(rows))
        sub = position[self.order]
        return sub[sub >= 0]


# where a subset of a column comes from: the column's sort and the subset's rows in it
Subset = tuple[SortedColumn, np.ndarray]


class Ramps:
    """Events sorted once, for the ramp sums of several weightings of them."""

    def __init__(self, events: np.ndarray, edges: np.ndarray, rows: Subset | None = None):
        # stable: tied events are added in their order; already sorted (engine steps,
        # arrivals): nothing to reorder
        in_order = rows is None and ascending(events)
        if rows is not None:
            self.order = rows[0].of(rows[1])
        else:
            self.order = None if in_order else stable_argsort(events)
        self.events = events if in_order else events[self.order]
        self.at = np.searchsorted(self.events, edges, side="right")
        self.edges = edges

    def sum(self, weights: np.ndarray) -> np.ndarray:
        """sum over events e <= T of w (T - e), at every edge T (sorted cumulative sums)."""
        w = weights if self.order is None else weights[self.order]
        return self.at_edges(*running_sums([w, w * self.events]))

    def at_edges(self, cw: np.ndarray, cwe: np.ndarray) -> np.ndarray:
        """The ramp sums from the running sums of w and of w e (in this sort)."""
        return cw[self.at] * self.edges - cwe[self.at]


def running_sums(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Each array's running sums after a 0, two arrays to one complex cumsum: its parts
    add independently (the same additions in the same order), and one pass costs what a
    real cumsum does (the additions wait on each other, not on memory)."""
    out = []
    for i in range(0, len(arrays), 2):
        pair = arrays[i : i + 2]
        both = np.zeros(len(pair[0]) + 1, dtype=complex)
        both.real[1:] = pair[0]
        if len(pair) == 2:
            both.imag[1:] = pair[1]
        cum = np.cumsum(both)
        out += [cum.real, cum.imag][: len(pair)]
    return out


def spread(
    starts: np.ndarray,
    ends: np.ndarray,
    amounts: np.ndarray,
    edges: np.ndarray,
    ends_from: Subset | None = None,
):
    """Per window, the part of each amount spread evenly over its [start, end] (an empty
    interval puts it all at its start). ``ends_from``: the ends' column, sorted already."""
    span = ends - starts
    point = ~(span > 0)
    out = np.zeros(len(edges) - 1)
    if point.any():
        out += count(starts[point], edges, amounts[point])
    if (~point).any():
        rate = amounts[~point] / span[~point]
        fall = Ramps(ends[~point], edges, subset(ends_from, ~point))
        area = Ramps(starts[~point], edges).sum(rate) - fall.sum(rate)
        out += np.diff(area)
    return out


def slots(times: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Each time's window; the run's end falls in the last one."""
    return np.clip(np.searchsorted(edges, times, side="right") - 1, 0, len(edges) - 2)


def ascending(values: np.ndarray) -> bool:
    """Sorted, and no NaN (NaN compares false)."""
    return bool(np.all(values[1:] >= values[:-1]))


def slots_of_sorted(times: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``slots`` of times in ascending order (NaN last): from the edges' places among
    them rather than each time's place among the edges."""
    cuts = np.searchsorted(times, edges[1:-1], side="left")
    counts = np.diff(cuts, prepend=0, append=len(times))
    return np.repeat(np.arange(len(edges) - 1), counts)


def count(times: np.ndarray, edges: np.ndarray, weights: np.ndarray | None = None):
    """Per window, the events (or their weights)."""
    if weights is None and ascending(times):  # arrivals: find the edges among the times
        return np.bincount(slots_of_sorted(times, edges), minlength=len(edges) - 1)
    return np.bincount(slots(times, edges), weights=weights, minlength=len(edges) - 1)


def subset(rows: Subset | None, keep: np.ndarray) -> Subset | None:
    """The rows of ``rows`` that ``keep`` keeps (still in the same column's sort)."""
    return None if rows is None else (rows[0], rows[1][keep])


def held(
    starts: np.ndarray,
    ends: np.ndarray,
    edges: np.ndarray,
    *values: np.ndarray | None,
    ends_from: Subset | None = None,
) -> list[np.ndarray]:
    """Per window, the integral of each value held over each [start, end] (rows where it
    is unknown left out; None: 1 on every row, the time covered). The values known on
    every row share one sort of the bounds."""
    span = ends > starts
    out: list[np.ndarray] = [np.empty(0)] * len(values)
    together = []  # the values known on every row
    for i, v in enumerate(values):
        keep = span if v is None else span & np.isfinite(v)
        if v is None or np.array_equal(keep, span):
            together.append(i)
            continue
        fall = Ramps(ends[keep], edges, subset(ends_from, keep))
        out[i] = np.diff(Ramps(starts[keep], edges).sum(v[keep]) - fall.sum(v[keep]))
    if together:
        rise = Ramps(starts[span], edges)
        fall = Ramps(ends[span], edges, subset(ends_from, span))
        weights = [None if values[i] is None else values[i][span] for i in together]
        for i, integral in zip(together, _held_together(rise, fall, weights), strict=True):
            out[i] = integral
    return out


def _held_together(rise: Ramps, fall: Ramps, weights: list[np.ndarray | None]) -> list[np.ndarray]:
    """``held`` of several weightings of the same bounds: all their running sums go two
    to a pass; the running sums of ones are the counts; bounds in the same order (engine
    steps) share the weights' running sums."""
    chains: list[np.ndarray] = []

    def chain(values: np.ndarray) -> int:
        chains.append(values)
        return len(chains) - 1

    plan = []
    for w in weights:
        if w is None:  # w (T - e) with w = 1
            cw_rise = cw_fall = None
            cws, cwe = chain(rise.events), chain(fall.events)
        else:
            w_rise = w if rise.order is None else w[rise.order]
            w_fall = w if fall.order is None else w[fall.order]
            cw_rise = chain(w_rise)
            same = rise.order is None and fall.order is None
            cw_fall = cw_rise if same else chain(w_fall)
            cws, cwe = chain(w_rise * rise.events), chain(w_fall * fall.events)
        plan.append((cw_rise, cws, cw_fall, cwe))
    sums = running_sums(chains)
    counts = np.arange(len(rise.events) + 1, dtype=float)

    def cum(k: int | None) -> np.ndarray:
        return counts if k is None else sums[k]

    return [
        np.diff(rise.at_edges(cum(a), sums[b]) - fall.at_edges(cum(c), sums[d]))
        for a, b, c, d in plan
    ]


class SlotRows:
    """Rows grouped by their slot (window), worked out once for several columns: the rows
    in slot order (numpy radix-sorts 16-bit keys) and each one's place in its slot."""

    def __init__(self, slot: np.ndarray, n: int) -> None:
        self.size = np.bincount(slot, minlength=n)
        self.keys = slot.astype(np.uint16) if n <= 1 << 16 else slot  # each row's slot
        self.order = np.argsort(self.keys, kind="stable")
        self.slot = slot[self.order]
        self.place = np.arange(len(slot)) - (np.cumsum(self.size) - self.size)[self.slot]
        self.width = int(self.size.max()) if len(slot) else 0
        # a slot per row of a padded matrix, when padding would not swell it much
        self.padded = n * self.width <= 4 * len(slot) + 1024


def group_quantiles(values: np.ndarray, rows: SlotRows, qs: tuple[float, ...]) -> np.ndarray:
    """Per slot, pandas' groupby quantile (linear, NaN left out) bit for bit, for all slots
    at once (a row per q): each slot's values sorted as one row of a matrix padded with
    +inf (numpy sorts rows fast; NaN sorts after the padding), or, when slots are too
    uneven for that, one sort of the values then a stable sort by slot."""
    n = len(rows.size)
    nan = np.isnan(values)
    size = rows.size - np.bincount(rows.keys[nan], minlength=n) if nan.any() else rows.size
    if rows.padded:
        ranked = np.full((n, rows.width), np.inf)
        ranked[rows.slot, rows.place] = values[rows.order]
        ranked.sort(axis=1)
        ranked, start = ranked.ravel(), np.arange(n) * rows.width
    else:
        known, keys = values[~nan], rows.keys[~nan]  # NaN left out
        order = np.argsort(known)
        ranked = known[order[np.argsort(keys[order], kind="stable")]]
        start = np.cumsum(size) - size
    if not len(ranked):
        return np.full((len(qs), n), math.nan)
    pos = np.array(qs)[:, None] * (size - 1).astype(float)  # a row per q
    i = pos.astype(np.int64)  # truncates, as pandas does
    frac = pos % 1
    last = len(ranked) - 1
    val = ranked[np.clip(start + i, 0, last)]
    nxt = ranked[np.clip(start + np.minimum(i + 1, size - 1), 0, last)]
    with np.errstate(invalid="ignore"):  # inf - inf next to an infinity: NaN, as pandas
        got = np.where(frac == 0.0, val, val + (nxt - val) * frac)
    return np.where(size > 0, got, math.nan)
