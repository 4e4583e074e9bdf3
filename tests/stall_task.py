"""A user task that hangs on one video when the environment names it, so a test can kill a
build at a known point without racing it. Otherwise it is the README's task under its own name.
"""

from __future__ import annotations

import os
import threading

from user_task import PlaybackDirection

STALL_VIDEO = "VIUBENCH_TEST_STALL_VIDEO"   # environment: the video (relative path) to hang on
STALL_MARK = "VIUBENCH_TEST_STALL_MARK"     # environment: a file created when the hang begins
HANG_SECONDS = 300                           # a hung build still ends, should nobody kill it


class StallingDirection(PlaybackDirection):
    name = "stalling_direction"

    def draw(self, rng, clip, variant, donors):
        if os.environ.get(STALL_VIDEO) == clip.video_path:
            if os.environ.get(STALL_MARK):
                open(os.environ[STALL_MARK], "w").close()
            threading.Event().wait(HANG_SECONDS)
        return super().draw(rng, clip, variant, donors)


TASK = StallingDirection()
