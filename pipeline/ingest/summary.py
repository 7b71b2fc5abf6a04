"""The account every step gives of a run: what was loaded (per animal and day), skipped and why,
failed and why, and where it looked.

The same lines go to the console (:meth:`Summary.report`) and to the log file
(:meth:`Summary.log_report`). Items are also logged one by one on the ``pipeline.report`` logger
(the log file only, never the console) so an unattended run leaves a full record.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

#: Per-item lines: written to the log file only (the console gets the grouped report at the end).
report_log = logging.getLogger("pipeline.report")

#: How many names a grouped line lists before "... and N more".
FIRST_FEW = 3


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 or word.endswith("s") and n != 1 else f"{n} {word}s"


@dataclass
class Summary:
    """What happened to each item (file, session, probe, row) a step looked at."""

    what: str = "items"
    found: int = 0
    loaded: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (item, reason)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (item, reason)
    #: (group, {count name: n}) per loaded item; group is "<h2o> <YYYY-MM-DD>" where it applies
    counts: list[tuple[str, dict[str, int]]] = field(default_factory=list)
    #: where the step looked: folders with the pattern it looked for
    looked: list[str] = field(default_factory=list)
    #: files or folders seen but not taken (name not as expected), with the reason
    ignored: list[tuple[str, str]] = field(default_factory=list)
    #: named warnings and repairs (a value kept although two sources disagree, a sort applied...)
    notes: list[str] = field(default_factory=list)

    # --- recording ----------------------------------------------------------------------------
    def load(self, item: str, group: str | None = None, **counts: int) -> None:
        self.loaded.append(item)
        self.counts.append((group or item, counts))
        report_log.info("loaded %s", item)

    def skip(self, item: str, reason: str) -> None:
        self.skipped.append((item, reason))
        report_log.info("skipped %s: %s", item, reason)

    def fail(self, item: str, reason: str) -> None:
        self.failed.append((item, reason))
        report_log.info("failed %s: %s", item, reason)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
            report_log.info("note: %s", text)

    def look(self, where: str) -> None:
        if where not in self.looked:
            self.looked.append(where)

    def ignore(self, path: str, reason: str) -> None:
        self.ignored.append((path, reason))
        report_log.info("ignored %s: %s", path, reason)

    def already_loaded(self, item: str, changed: list[str], remedy: str) -> None:
        """A re-run met a loaded item: skip it, unless files it came from changed since (then
        fail, saying which and how to reload: the loaders never alter what is stored)."""
        if changed:
            self.fail(item, f"already loaded, but these files changed since: {', '.join(changed)}; {remedy}")
        else:
            self.skip(item, "already loaded")

    # --- reporting ----------------------------------------------------------------------------
    @property
    def ok(self) -> bool:
        return not self.failed

    def line(self) -> str:
        return (
            f"{self.what}: {self.found} found, {len(self.loaded)} loaded, "
            f"{len(self.skipped)} skipped, {len(self.failed)} failed"
        )

    def _loaded_lines(self, verbose: bool) -> list[str]:
        if verbose or len(self.loaded) <= 10:
            return [f"    {item}" for item in self.loaded]
        # many: one line per animal (the first word of the group), with totals and the day range
        by_animal: dict[str, list[tuple[str, dict[str, int]]]] = defaultdict(list)
        for group, counts in self.counts:
            by_animal[group.split(" ")[0]].append((group, counts))
        lines = []
        for animal, entries in by_animal.items():
            totals: dict[str, int] = defaultdict(int)
            for _, counts in entries:
                for k, v in counts.items():
                    totals[k] += v
            days = sorted({g.split(" ", 1)[1] for g, _ in entries if " " in g})
            span = f" ({days[0]} .. {days[-1]})" if len(days) > 1 else (f" ({days[0]})" if days else "")
            extra = ", ".join(_plural(v, k) for k, v in totals.items())
            lines.append(f"    {animal}: {len(entries)} {self.what}{span}" + (f", {extra}" if extra else ""))
        return lines

    @staticmethod
    def _grouped(items: list[tuple[str, str]], verbose: bool) -> list[str]:
        """Items with the same reason on one line: count, the first few names."""
        if verbose:
            return [f"    {item}: {reason}" for item, reason in items]
        by_reason: dict[str, list[str]] = defaultdict(list)
        for item, reason in items:
            by_reason[reason].append(item)
        lines = []
        for reason, names in by_reason.items():
            if len(names) == 1:
                lines.append(f"    {names[0]}: {reason}")
                continue
            shown = ", ".join(names[:FIRST_FEW]) + (
                f" and {len(names) - FIRST_FEW} more" if len(names) > FIRST_FEW else ""
            )
            lines.append(f"    {len(names)} x {reason}: {shown}")
        return lines

    def report_lines(self, verbose: bool = False, quiet: bool = False) -> list[str]:
        lines = [self.line()]
        if self.failed:  # every failure, one line each: each needs action
            lines.append("  failed:")
            lines += [f"    {item}: {reason}" for item, reason in self.failed]
        if quiet:
            return lines if self.failed else []
        if self.loaded:
            lines.append("  loaded:")
            lines += self._loaded_lines(verbose)
        if self.skipped:
            lines.append("  skipped:")
            lines += self._grouped(self.skipped, verbose)
        if self.notes:
            lines.append("  notes:")
            lines += [f"    {n}" for n in self.notes]
        if self.ignored:
            lines.append("  ignored (not named as this step expects):")
            lines += self._grouped(self.ignored, verbose)
        if self.looked and (verbose or not self.found or not (self.loaded or self.skipped or self.failed)):
            lines.append("  looked in:" if self.found else "  nothing found; looked in:")
            lines += [f"    {w}" for w in self.looked]
        return lines

    def report(self, max_items: int | None = None, verbose: bool = False, quiet: bool = False) -> str:
        """The grouped report as text (``verbose`` lists every item; ``quiet`` only failures)."""
        return "\n".join(self.report_lines(verbose=verbose, quiet=quiet))

    def log_report(self, verbose: bool = False) -> None:
        """Write the report to the log file (the ``pipeline.report`` logger)."""
        for line in self.report_lines(verbose=verbose):
            report_log.info("%s", line)
