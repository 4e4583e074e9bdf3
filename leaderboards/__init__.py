"""Leaderboard tables: the published rows viubench shows beside measured ones (package data,
read with importlib.resources) and the leaderboards measured with it."""
