"""Which table keys this worker answers for.

Workers also hold standby copies of other workers' partitions; queries and
the retention sweep must only answer for the partitions they are active for,
or a row would be listed (or expired) twice.
"""

from __future__ import annotations

from typing import Any, Callable

from convoy_stream.ids import partition_of


def active_keys(assignor: Any, topic: str, partitions: int) -> Callable[[str], bool]:
    """Whether a table key belongs to a partition of `topic` this worker is active for.

    `assignor` is Faust's partition assignor (`app.assignor`); table partitions
    follow the partitions of the topic that feeds them.
    """
    owned = {tp.partition for tp in assignor.assigned_actives() if tp.topic == topic}
    return lambda key: partition_of(key, partitions) in owned
