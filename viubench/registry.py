"""Name -> task lookup: built-in task modules, the `viubench.tasks` entry-point group, and
`package.module:attribute` for user code, in that order of precedence (a later one of the same
name wins, with a warning). Built fresh on every call: no global registry."""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import sys
import warnings
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any, Mapping, Sequence

from .answers import POLICIES
from .task import Task

ENTRY_POINT_GROUP = "viubench.tasks"
SUITE_ORDER = ("viubench",)
REQUIRED = ("name", "version", "protocol", "variants", "suites", "reward_policies", "draw",
            "render", "parse", "metrics", "reward")


def import_user_module(name: str) -> ModuleType:
    """Import a module the user named, looking in the current folder too (as `python -m`
    does, so `my_task.py` beside you works from the `viubench` command); ValueError in one line
    if it cannot be imported."""
    here = os.getcwd()
    added = here not in sys.path
    if added:
        sys.path.insert(0, here)
    try:
        return importlib.import_module(name)
    except (ImportError, SyntaxError) as error:
        raise ValueError(f"cannot import module {name!r}: {error}") from error
    finally:
        if added:
            sys.path.remove(here)


def load_object(reference: str) -> Any:
    """Import `package.module:attribute` (the attribute may be dotted)."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{reference!r} is not of the form package.module:attribute")
    target: Any = import_user_module(module_name)
    for name in attribute.split("."):
        if not hasattr(target, name):
            raise ValueError(f"cannot load {reference}: {target.__name__} has no attribute"
                             f" {name!r}")
        target = getattr(target, name)
    return target


def _as_task(obj: Any, origin: str) -> Task:
    """`obj` (or an instance of it) once it meets the task contract (`viubench.task.Task`);
    otherwise ValueError in one line naming `origin` and what is wrong."""
    task = obj() if isinstance(obj, type) else obj
    missing = [name for name in REQUIRED if not hasattr(task, name)]
    if missing:
        raise ValueError(f"task {origin} lacks {', '.join(missing)} (see viubench/task.py)")
    parameters = inspect.signature(task.parse).parameters
    if "policy" not in parameters:
        raise ValueError(f"task {origin}: parse(text, variant, policy) must take a `policy`"
                         " (lenient, strict or videossr), not the old `strict` flag")
    if "answer" in parameters:
        raise ValueError(f"task {origin}: parse(text, variant, policy) is never given the true"
                         " answer; take the variant name (its parameters say what to expect)")
    if "score" not in getattr(task, "metric_names", ("score",)):
        raise ValueError(f"task {origin}: metric_names must include \"score\", the headline"
                         " metric every leaderboard reads")
    if task.variants and task.parse("", next(iter(task.variants))).ok:
        raise ValueError(f"task {origin}: parse(\"\", variant) must fail: an empty reply is a"
                         " parse failure, never an answer")
    unknown = [p for p in task.reward_policies if p not in POLICIES]
    if unknown or not task.reward_policies:
        raise ValueError(f"task {origin}: reward_policies must be a non-empty subset of"
                         f" {', '.join(POLICIES)} (got {list(task.reward_policies)})")
    return task


def load_tasks(extra: Sequence[str] = ()) -> dict[str, Task]:
    """All tasks by name: built-ins, then installed plug-ins, then `extra` module:attribute
    refs; a later one of the same name replaces an earlier one, with a warning."""
    import viubench.tasks as builtin

    found: list[tuple[str, Task]] = []
    for module in sorted(pkgutil.iter_modules(builtin.__path__), key=lambda m: m.name):
        loaded = importlib.import_module(f"{builtin.__name__}.{module.name}")
        if hasattr(loaded, "TASK"):
            found.append(("built-in", _as_task(loaded.TASK, loaded.__name__)))
    found += [(f"entry point {ep.name}", _as_task(ep.load(), f"entry point {ep.name}"))
              for ep in entry_points(group=ENTRY_POINT_GROUP)]
    found += [(ref, _as_task(load_object(ref), ref)) for ref in extra]
    tasks: dict[str, Task] = {}
    origins: dict[str, str] = {}
    for origin, task in found:
        if task.name in tasks and tasks[task.name] is not task:
            shadowed(f"task {task.name!r}", origin, origins[task.name])
        tasks[task.name], origins[task.name] = task, origin
    return tasks


def shadowed(what: str, origin: str, replaced: str) -> None:
    """Warn (once per message) that `origin` replaces the `what` of `replaced`."""
    warnings.warn(f"{what} from {origin} replaces the one from {replaced}", UserWarning,
                  stacklevel=3)


def suites(tasks: Mapping[str, Task]) -> dict[str, list[tuple[str, str]]]:
    """Suite name -> [(task, variant)], from what each task declares; `all` holds everything."""
    result: dict[str, list[tuple[str, str]]] = {}
    for task in tasks.values():
        for suite, variants in task.suites.items():
            result.setdefault(suite, []).extend((task.name, v) for v in variants)
    result["all"] = [(task.name, v) for task in tasks.values() for v in task.variants]
    return result


def select(tasks: dict[str, Task], suite: str | None,
           filters: Sequence[str] = ()) -> list[tuple[str, str]]:
    """(task, variant) pairs of `suite`, kept only where they match a `task[:variant]` filter."""
    available = suites(tasks)
    name = suite or ("all" if filters else "viubench")
    if name not in available:
        raise ValueError(f"unknown suite {name!r}; suites: {', '.join(sorted(available))}")
    items = available[name]
    for wanted in filters:
        task, _, variant = wanted.partition(":")
        if task not in tasks:
            raise ValueError(f"unknown task {task!r}; tasks: {', '.join(sorted(tasks))}")
        if variant and variant not in tasks[task].variants:
            raise ValueError(f"task {task} has no variant {variant!r}; variants:"
                             f" {', '.join(tasks[task].variants)}")
        if not any(_matches(item, wanted) for item in items):
            raise ValueError(f"{wanted} is not in suite {name!r}; use --suite all")
    if filters:
        items = [item for item in items if any(_matches(item, f) for f in filters)]
    return items


def _matches(item: tuple[str, str], wanted: str) -> bool:
    task, _, variant = wanted.partition(":")
    return item[0] == task and (not variant or item[1] == variant)


def task_of(tasks: Mapping[str, Task], name: str, where: str) -> Task:
    """The task a test-set record names, among those loaded; a test set never names code to
    import, so a missing one is a ValueError asking for `--task-module`."""
    try:
        return tasks[name]
    except KeyError:
        raise ValueError(f"{where} uses task {name!r}, which is neither built in nor installed;"
                         " pass --task-module MODULE:ATTR (code named by a test set is never"
                         " imported)") from None
