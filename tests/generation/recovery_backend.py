"""A backend for the fault-recovery tests' worker processes: the locmem backend (valid French
drafts, no model) taking APPRECIATION_TEST_BATCH_SECONDS per batch, so that a fault can land
in the middle of a class."""

import os
import time

from generation.backends import LocmemBackend


class SlowLocmemBackend(LocmemBackend):
    def generate(self, requests, *, seed=None, **callbacks):
        time.sleep(float(os.environ.get("APPRECIATION_TEST_BATCH_SECONDS", "0.5")))
        return super().generate(requests, seed=seed, **callbacks)
