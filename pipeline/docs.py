"""Write ``docs/<step>.md``, one page per ingest step, from the code's own docstrings.

The folder and file rules of a step live in one place, the docstrings of its step module and of
the readers it uses, so the pages cannot drift from the code: ``python -m pipeline.docs`` writes
them, and a test checks that the committed pages equal what this writes.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


@dataclass(frozen=True)
class Page:
    file: str
    title: str
    command: str
    settings: tuple[str, ...]
    step: str  # module whose docstring says where the step looks and what it loads
    readers: tuple[str, ...]  # the format readers it uses
    python: str  # the same from Python


PAGES = (
    Page(
        "ingest-behavior.md",
        "Behaviour ingest: delay-response rigs",
        "mapshell ingest-behavior [--path DIR --rig NAME]",
        ("behavior_data_paths",),
        "pipeline.ingest.behavior.delay_response",
        ("pipeline.io.bpod_delay_response",),
        "from pipeline.ingest.behavior import ingest_behavior; print(ingest_behavior().report())",
    ),
    Page(
        "ingest-foraging.md",
        "Behaviour ingest: foraging (pybpod)",
        "mapshell ingest-foraging",
        ("behavior_bpod",),
        "pipeline.ingest.behavior.foraging",
        ("pipeline.io.pybpod",),
        "from pipeline.ingest.behavior import ingest_foraging; print(ingest_foraging().report())",
    ),
    Page(
        "ingest-tracking.md",
        "Tracking ingest (DeepLabCut)",
        "mapshell ingest-tracking",
        ("tracking_data_paths",),
        "pipeline.ingest.tracking.step",
        ("pipeline.io.dlc",),
        "from pipeline.ingest.tracking import ingest_tracking; print(ingest_tracking().report())",
    ),
    Page(
        "ingest-ephys.md",
        "Ephys ingest (Kilosort, JRClust, SpikeGLX, bitcode)",
        "mapshell ingest-ephys [--path DIR] [--replace [RESTRICTION]]\nmapshell archive list [RESTRICTION] | restore INSERTION-KEY N [--histology]",
        ("ephys_data_paths",),
        "pipeline.ingest.ephys.step",
        ("pipeline.io.spikeglx", "pipeline.io.kilosort", "pipeline.io.jrclust", "pipeline.io.bitcode"),
        "from pipeline.ingest.ephys import ingest_ephys; print(ingest_ephys().report())",
    ),
    Page(
        "ingest-histology.md",
        "Histology ingest",
        "mapshell ingest-histology [--path DIR] [--replace [RESTRICTION]]",
        ("histology_data_paths",),
        "pipeline.ingest.histology.step",
        ("pipeline.io.histology",),
        "from pipeline.ingest.histology import ingest_histology; print(ingest_histology().report())",
    ),
    Page(
        "ccfload.md",
        "CCF: the Allen ontology and annotation volume",
        "mapshell ccfload",
        ("ccf_data_paths",),
        "pipeline.ccf",
        ("pipeline.io.ccf",),
        "from pipeline import ccf; ccf.CCFBrainRegion.load_regions(); ccf.CCFAnnotation.load_ccf_annotation()",
    ),
)


def _markdown(doc: str) -> str:
    """A module docstring (reST-flavoured) as Markdown: ``x`` -> `x`; reST tables and ``::``
    literal blocks fenced so they keep their layout."""
    lines = doc.strip("\n").splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if re.fullmatch(r"=+( +=+)+ *", line):  # a reST simple table: fence it up to its closing rule
            block = [line]
            i += 1
            while i < len(lines):
                block.append(lines[i])
                i += 1
                closing = re.fullmatch(r"=+( +=+)+ *", block[-1]) and (i >= len(lines) or not lines[i].strip())
                if closing:
                    break
            out += ["```", *block, "```"]
            continue
        if line.rstrip().endswith("::") and i + 1 < len(lines):
            out.append(line.rstrip()[:-1] if not line.rstrip().endswith(" ::") else line.rstrip()[:-3])
            i += 1
            block = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith("    ")):
                block.append(lines[i][4:] if lines[i].startswith("    ") else "")
                i += 1
            while block and not block[0].strip():
                block.pop(0)
            while block and not block[-1].strip():
                block.pop()
            out += ["", "```", *block, "```", ""]
            continue
        out.append(line)
        i += 1
    fenced = False
    for k, line in enumerate(out):  # ``x`` -> `x`, outside the fenced blocks
        if line == "```":
            fenced = not fenced
        elif not fenced:
            out[k] = re.sub(r"``([^`]+)``", r"`\1`", line)
    return "\n".join(out)


def render(page: Page) -> str:
    from . import config

    step_doc = importlib.import_module(page.step).__doc__ or ""
    parts = [
        f"# {page.title}",
        "",
        "<!-- Generated by `python -m pipeline.docs` from the docstrings of the modules named below; "
        "edit those, not this page. -->",
        "",
        f"```\n{page.command}\n```",
        "",
        f"From Python: `{page.python}`",
        "",
        "Settings: " + ", ".join(f"`{k}`" for k in page.settings) + " (see [configuration](configuration.md)).",
        "",
    ]
    for key in page.settings:
        if key in config.VALIDATORS:
            parts.append(f"Shape of `{key}`: {config.SHAPES.get(key, 'see configuration')}.")
    parts += ["", f"## What it does (`{page.step}`)", "", _markdown(step_doc), ""]
    for reader in page.readers:
        parts += [f"## File format (`{reader}`)", "", _markdown(importlib.import_module(reader).__doc__ or ""), ""]
    parts += [
        "## Every run",
        "",
        "One item (a day, a probe, an insertion) is one transaction; a re-run skips what is loaded and "
        "reports files that changed since; the run ends with a summary (loaded per animal and day, skipped "
        "and failed with reasons, where it looked), also written to the log file. `--verbose` lists every "
        "item, `--quiet` prints only failures; the exit status is 1 if anything failed.",
        "",
    ]
    return "\n".join(parts).rstrip() + "\n"


def write(folder: Path = DOCS) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for page in PAGES:
        path = folder / page.file
        path.write_text(render(page), encoding="utf-8")
        out.append(path)
    return out


def stale(folder: Path = DOCS) -> list[str]:
    """Pages that differ from what the code's docstrings give (missing pages included)."""
    return [
        p.file
        for p in PAGES
        if not (folder / p.file).is_file() or (folder / p.file).read_text(encoding="utf-8") != render(p)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a page is out of date, write nothing")
    args = parser.parse_args(argv)
    if args.check:
        bad = stale()
        for f in bad:
            print(f"docs/{f} is out of date: run python -m pipeline.docs", file=sys.stderr)
        return 1 if bad else 0
    for p in write():
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
