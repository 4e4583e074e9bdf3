"""viubench: verifiable self-supervised video-understanding benchmarks for VideoLLMs.

Builds VIUBench-style test sets (anomaly grounding, object counting, temporal jigsaw) from any
folder of videos, evaluates VideoLLMs on them and scores the answers.
"""

__version__ = "0.1.0"
