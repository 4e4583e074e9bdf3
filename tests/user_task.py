"""my_task.py: is the clip played forwards or backwards?"""

import re

from viubench.task import BaseTask, Parsed, Rendered, TextPart, Variant, VideoPart


class PlaybackDirection(BaseTask):
    name = "playback_direction"
    version = "1"
    variants = {"default": Variant("easy", {}, "forwards or backwards")}
    suites = {"direction": ("default",)}

    def draw(self, rng, clip, variant, donors):
        return {"reversed": rng.random() < 0.5}

    def render(self, clip, variant, draws, donors):
        order = list(range(len(clip.frames)))
        if draws["reversed"]:
            order.reverse()
        question = "Is this video played forwards or backwards? Reply with one word."
        answer = "backwards" if draws["reversed"] else "forwards"
        return Rendered([VideoPart(order, clip.sample_fps), TextPart(question)], answer)

    def parse(self, text, variant, policy="lenient"):
        if policy == "strict":
            word = text.strip().lower()
            ok = word in ("forwards", "backwards")
            return Parsed(word) if ok else Parsed(error="not one word")
        found = re.findall(r"\b(forwards|backwards)\b", text.lower())
        return Parsed(found[-1]) if found else Parsed(error="neither forwards nor backwards")

    def metrics(self, parsed, answer):
        return {"score": float(parsed.ok and parsed.value == answer)}

    def answer_space(self, variant, timeline):
        return ("forwards", "backwards")


TASK = PlaybackDirection()
