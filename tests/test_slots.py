"""The newest-only hand-off every pipeline thread relies on."""
from __future__ import annotations

import threading
import time

from bgswap.app.slots import LatestSlot


def test_the_newest_item_wins_and_replaced_ones_count_as_dropped():
    slot: LatestSlot[int] = LatestSlot()
    for i in range(5):
        slot.put(i)
    assert slot.get(timeout=0) == 4
    assert slot.dropped == 4
    assert slot.get(timeout=0) is None                    # taken: empty until the next put
    slot.put(7)
    assert slot.get(timeout=0) == 7 and slot.dropped == 4


def test_a_waiting_reader_gets_the_next_item():
    slot: LatestSlot[str] = LatestSlot()
    got = []
    reader = threading.Thread(target=lambda: got.append(slot.get(timeout=10)))
    reader.start()
    time.sleep(0.05)
    slot.put("frame")
    reader.join(timeout=10)
    assert got == ["frame"] and slot.dropped == 0


def test_close_wakes_every_waiting_reader_at_once():
    slot: LatestSlot[int] = LatestSlot()
    got = []
    readers = [threading.Thread(target=lambda: got.append(slot.get(timeout=30))) for _ in range(3)]
    for r in readers:
        r.start()
    time.sleep(0.05)
    t = time.monotonic()
    slot.close()
    for r in readers:
        r.join(timeout=10)
    assert got == [None, None, None]
    assert time.monotonic() - t < 5                       # not the 30 s timeout
    assert slot.get(timeout=30) is None                   # closed: no waiting at all
