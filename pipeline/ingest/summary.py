"""The account every loader gives of a run: found / loaded / skipped / failed, with reasons."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class Summary:
    """What happened to each item (file, session, row) a loader looked at."""

    what: str = "items"
    found: int = 0
    loaded: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (item, reason)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (item, reason)

    def load(self, item: str) -> None:
        self.loaded.append(item)
        log.debug("loaded %s", item)

    def skip(self, item: str, reason: str) -> None:
        self.skipped.append((item, reason))
        log.debug("skipped %s: %s", item, reason)

    def fail(self, item: str, reason: str) -> None:
        self.failed.append((item, reason))
        log.warning("failed %s: %s", item, reason)

    def already_loaded(self, item: str, changed: list[str], remedy: str) -> None:
        """A re-run met a loaded item: skip it, unless files it came from changed since (then
        fail, saying which and how to reload: the loaders never alter what is stored)."""
        if changed:
            self.fail(item, f"already loaded, but these files changed since: {', '.join(changed)}; {remedy}")
        else:
            self.skip(item, "already loaded")

    @property
    def ok(self) -> bool:
        return not self.failed

    def line(self) -> str:
        return (
            f"{self.what}: {self.found} found, {len(self.loaded)} loaded, "
            f"{len(self.skipped)} skipped, {len(self.failed)} failed"
        )

    def report(self, max_items: int = 50) -> str:
        """A multi-line text: the counts, then every failure and skip reason (grouped)."""
        lines = [self.line()]
        for title, items in (("failed", self.failed), ("skipped", self.skipped)):
            if not items:
                continue
            lines.append(f"  {title}:")
            for item, reason in items[:max_items]:
                lines.append(f"    {item}: {reason}")
            if len(items) > max_items:
                lines.append(f"    ... and {len(items) - max_items} more")
        return "\n".join(lines)
