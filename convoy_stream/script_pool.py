"""Threads for tenants' scripts, shared fairly between projects.

A script runs on a thread of a small pool, never on the event loop. Each project runs at most
`per_project` scripts at once; its further work waits in a queue of its own, before the pool.
So the pool's queue holds at most `per_project` jobs of any one project, and a project whose
scripts are slow (or never end, until the time limit stops them) holds at most that many
threads: another project's script starts at once while threads are free, and otherwise after
the jobs already queued, at most `per_project` of each other project. A job resubmitted by a
project (the next slice of a batch) joins the back of the queue: projects take turns.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

T = TypeVar("T")


class ScriptPool:
    """`await pool.run(project_id, work)` runs `work()` on the pool, fairly across projects."""

    def __init__(self, threads: int, per_project: int = 1) -> None:
        if threads < 1 or per_project < 1:
            raise ValueError("a script pool needs at least one thread, and one per project")
        self.threads = threads
        self.per_project = per_project
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="scripts")
        self._queues: dict[str, _ProjectQueue] = {}

    async def run(self, project_id: str, work: Callable[[], T]) -> T:
        """A caller that is cancelled stops waiting, but its script keeps the project's slot
        until the thread is done with it (a thread cannot be stopped; the time limit ends it)."""
        queue = self._queues.get(project_id)
        if queue is None:
            queue = self._queues[project_id] = _ProjectQueue(self.per_project)
        queue.users += 1
        try:
            await queue.slots.acquire()
        except BaseException:
            self._leave(project_id, queue)
            raise
        future = asyncio.get_running_loop().run_in_executor(self._executor, work)
        future.add_done_callback(lambda _: (queue.slots.release(), self._leave(project_id, queue)))
        return await asyncio.shield(future)

    def _leave(self, project_id: str, queue: "_ProjectQueue") -> None:
        queue.users -= 1
        if not queue.users and self._queues.get(project_id) is queue:  # nothing running or waiting
            del self._queues[project_id]

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class _ProjectQueue:
    """One project's slots in the pool, and how many of its jobs hold or wait for one."""

    def __init__(self, slots: int) -> None:
        self.slots = asyncio.Semaphore(slots)
        self.users = 0
