"""The host side of the paged sampler (``paged.run``) for one page pool: its free list, its open prompts'
pages, its waiting rows and its slots' page tables. On a mesh ``paged.run`` keeps one :class:`DevicePool`
per data-parallel shard; all indices here are the shard's own (local prompts, rows, pages and slots).

Each round: :meth:`DevicePool.grow` gives every live slot the pages of its next ``page`` tokens (and
preempts rows should the pool run dry), :meth:`DevicePool.admit` admits waiting rows while free pages
allow, then the round runs on the device and :meth:`DevicePool.finish_round` returns finished rows' pages.

Progress guarantee: preemption never takes the pages of the *oldest* live row (most tokens; the lowest
slot on a tie), and that row's pages are handed out first, so it always runs on and finishes (a pool of
:func:`~jaxrlvr.sampling.paged_sizing.min_pool_pages` holds it alone); then the next oldest row is
protected. Rows cannot keep preempting each other (a livelock before: with two rows in a pool near its
minimum, each took the other's pages in turn).
"""

from __future__ import annotations

from collections import deque

import numpy as np


class DevicePool:
    """One pool's bookkeeping. ``lengths_P``: its prompts' lengths (0: padding); rows ``p * g + j``;
    ``order``: its real rows in admission order; ``s`` slots; page tables ``m_cols`` wide."""

    def __init__(self, lengths_P, g: int, n: int, page: int, num_pages: int, s: int, order, m_cols: int):
        self.lengths, self.g, self.n, self.page, self.num_pages = np.asarray(lengths_P), g, n, page, num_pages
        p = len(self.lengths)
        self.free = list(range(num_pages - 1, -1, -1))  # a stack: pop() takes the lowest page first
        self.npp_P = -(-np.maximum(self.lengths, 1) // page)  # the prompt's pages in the pool
        self.fp_P = np.maximum(self.lengths, 1) // page  # its full pages, shared by its rows' tables
        self.prompt_pages: dict[int, list[int]] = {}  # open prompts -> their pages
        self.left_P = np.where(self.lengths > 0, g, 0).astype(np.int64)  # rows of each prompt not finished
        self.live_P = np.zeros(p, np.int64)  # rows of each prompt in a slot
        self.queue = deque(order)
        self.slot_row = np.full(s, -1, np.int64)
        self.slot_pages: list[list[int]] = [[] for _ in range(s)]
        self.step = np.zeros(s, np.int64)
        self.live = np.zeros(s, bool)
        self.table = np.zeros((s, m_cols), np.int32)
        self.preemptions = 0
        self.peak_pages = 0
        self.stalled = 0  # rounds since a row last finished, while rows are being preempted
        self._preempted_before = 0
        self.admitted: tuple[list, list, list, list, list] = ([], [], [], [], [])

    # ---- pages
    def own_pages_for(self, pr: int, steps_now: int) -> int:
        """Own pages of a row of prompt ``pr`` covering the writes of a round starting at ``steps_now``."""
        if self.n <= 1:
            return 0
        return -(-(int(self.lengths[pr]) + min(steps_now - 1 + self.page, self.n - 1)) // self.page) - int(
            self.fp_P[pr]
        )

    def release(self, slot: int, finished: bool):
        pr = int(self.slot_row[slot]) // self.g
        self.free.extend(reversed(self.slot_pages[slot]))
        self.slot_pages[slot] = []
        self.live_P[pr] -= 1
        if finished:
            self.left_P[pr] -= 1
            if self.left_P[pr] == 0:
                self.free.extend(reversed(self.prompt_pages.pop(pr)))
        self.slot_row[slot] = -1
        self.live[slot] = False

    def close_idle_prompts(self) -> bool:
        idle = [pr for pr in self.prompt_pages if self.live_P[pr] == 0]
        for pr in idle:
            self.free.extend(reversed(self.prompt_pages.pop(pr)))
        return bool(idle)

    # ---- a round
    def grow(self) -> np.ndarray:
        """Pages for the live slots' next round, oldest row first; preempts the youngest rows (never the
        oldest) while the pool runs dry. Returns the preempted slots ``[s]`` (their rows wait again)."""
        reset = np.zeros(len(self.live), bool)
        self._preempted_before = self.preemptions
        by_age = sorted(np.flatnonzero(self.live), key=lambda x: (-self.step[x], x))
        for sl in by_age:
            if not self.live[sl]:
                continue
            need = self.own_pages_for(int(self.slot_row[sl]) // self.g, int(self.step[sl])) - len(self.slot_pages[sl])
            while need > len(self.free) and self.live[sl]:
                victims = [v for v in np.flatnonzero(self.live) if v != by_age[0]]  # the oldest row is kept
                if not victims:
                    if self.close_idle_prompts():
                        continue
                    raise RuntimeError("page pool exhausted by a single row (min_pool_pages is a bug)")
                v = min(victims, key=lambda x: (self.step[x], -x))  # the youngest, maybe ``sl`` itself
                self.queue.appendleft(int(self.slot_row[v]))
                self.release(v, finished=False)
                reset[v] = True
                self.preemptions += 1
            if not self.live[sl]:
                continue
            for _ in range(max(need, 0)):
                pg = self.free.pop()
                self.table[sl, int(self.fp_P[self.slot_row[sl] // self.g]) + len(self.slot_pages[sl])] = pg
                self.slot_pages[sl].append(pg)
        return reset

    def admit(self):
        """Admits waiting rows while the free pages cover their prompt (if not open) and first page plus
        one page per live slot (the next round's growth). Sets ``admitted`` = (slots, rows, opened prompts,
        partial prompt page to copy, destination page)."""
        while True:
            admit_slot, admit_row, opened, src, dst = [], [], [], [], []
            for sl in np.flatnonzero(~self.live):
                if not self.queue:
                    break
                r = self.queue[0]
                pr = r // self.g
                cost = (0 if pr in self.prompt_pages else int(self.npp_P[pr])) + self.own_pages_for(pr, 1)
                if len(self.free) < cost + int(self.live.sum()):
                    break
                self.queue.popleft()
                if pr not in self.prompt_pages:
                    self.prompt_pages[pr] = [self.free.pop() for _ in range(int(self.npp_P[pr]))]
                    opened.append(pr)
                own = [self.free.pop() for _ in range(self.own_pages_for(pr, 1))]
                fp = int(self.fp_P[pr])
                self.table[sl, :fp] = self.prompt_pages[pr][:fp]
                self.table[sl, fp : fp + len(own)] = own
                partial = fp < self.npp_P[pr] and own
                src.append(self.prompt_pages[pr][-1] if partial else self.num_pages)
                dst.append(own[0] if partial else self.num_pages)
                self.slot_row[sl], self.slot_pages[sl], self.step[sl], self.live[sl] = r, own, 1, True
                self.live_P[pr] += 1
                admit_slot.append(sl)
                admit_row.append(r)
            if self.live.any() or not self.queue:
                break
            if not self.close_idle_prompts():
                raise RuntimeError("no row fits the page pool")
        self.admitted = (admit_slot, admit_row, opened, src, dst)
        self.peak_pages = max(self.peak_pages, self.num_pages - len(self.free))

    def pages_read(self) -> int:
        """Pages the live slots attend (the round's pair count before bucketing)."""
        return sum(
            int(self.fp_P[self.slot_row[sl] // self.g]) + len(self.slot_pages[sl]) for sl in np.flatnonzero(self.live)
        )

    def round_args(self, b: int, refill_every: int, min_slots: int):
        """(slot_R, row_R, plen_R, src_R, dst_R, exit_done) of the round: the admissions (``slot_R >= s``,
        ``row_R = b``: none; no page copy: ``num_pages``) and the done-slot count that ends it."""
        s = len(self.live)
        admit_slot, admit_row, _, src, dst = self.admitted
        k = len(admit_slot)
        slot_R = np.full((s,), s, np.int32)
        row_R = np.full((s,), b, np.int32)
        slot_R[:k], row_R[:k] = admit_slot, admit_row
        plen_R = np.where(row_R < b, self.lengths[np.minimum(row_R, b - 1) // self.g], 0).astype(np.int32)
        src_R = np.full((s,), self.num_pages, np.int32)
        dst_R = np.full((s,), self.num_pages, np.int32)
        src_R[:k], dst_R[:k] = src, dst
        if self.queue:  # empty slots count as done: end the round once f more rows finish
            exit_done = int((~self.live).sum()) + min(refill_every, len(self.queue))
        elif s // 2 >= min_slots:
            exit_done = s - s // 2
        else:
            exit_done = s
        return slot_R, row_R, plen_R, src_R, dst_R, exit_done

    def finish_round(self, done: np.ndarray, step: np.ndarray):
        """Releases the finished rows' pages (``done`` / ``step``: the slots after the round)."""
        self.step = np.asarray(step, np.int64)
        finished = np.flatnonzero(self.live & np.asarray(done))
        for sl in finished:
            self.release(sl, finished=True)
        progressed = len(finished) or self.preemptions == self._preempted_before
        self.stalled = 0 if progressed else self.stalled + 1
        if self.stalled > 2 * (self.n // self.page + 2):  # the oldest row finishes within n / page rounds
            raise AssertionError(
                f"paged sampler: no row finished in {self.stalled} rounds of preemptions in a pool of "
                f"{self.num_pages} pages of {self.page} positions, although the oldest row is never preempted "
                "(a bug in paged_pool.py)"
            )

    def busy(self) -> bool:
        return bool(self.queue) or bool(self.live.any())

    def keep(self, s2: int) -> np.ndarray:
        """Compaction into ``s2`` slots: the live slots first (in order), returns the kept slot indices."""
        keep = np.concatenate([np.flatnonzero(self.live), np.flatnonzero(~self.live)])[:s2]
        self.slot_row, self.step, self.live, self.table = (
            self.slot_row[keep],
            self.step[keep],
            self.live[keep],
            self.table[keep],
        )
        self.slot_pages = [self.slot_pages[i] for i in keep]
        return keep
