"""What a sweep leaves on disk, in its folder (``sweeps/NAME`` by default)::

    plan.json        the trials (settings, seed) and the config they were planned from
    trial-001/       model.npz, history.csv, metrics.json, config.yaml (as `nncli train --run-dir`
                     leaves them), and trial.json: the trial's status, metric values, seconds
    results.csv      one row per trial, written when the sweep ends or stops
    .sweep.lock      held while a sweep runs here (one at a time)

Only the sweep's own process writes here (workers send their files back). A trial's files are
renamed into place together, trial.json last: a trial is finished exactly when its trial.json
exists, so a sweep killed at any moment resumes with nothing half-recorded.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path
from typing import Iterator

from nncli.errors import UsageError
from nncli.files.atomic import FileSet, atomic_write
from nncli.files.lock import OutputLock
from nncli.files.paths import check_name_lengths

PLAN, TRIAL_RECORD, RESULTS, LOCK = "plan.json", "trial.json", "results.csv", ".sweep.lock"
PLAN_FORMAT = "nncli-sweep-plan"


class SweepFolder:
    def __init__(self, path: Path):
        self.path = Path(path)

    @contextlib.contextmanager
    def claimed(self) -> Iterator["SweepFolder"]:
        """Hold the folder's lock (another sweep writing here is refused, naming its pid)."""
        check_name_lengths(self.path / PLAN)
        if self.path.exists() and not self.path.is_dir():
            raise UsageError(f"{self.path}: is a file; a sweep needs a folder")
        lock = OutputLock(self.path / LOCK, self.path).acquire()
        try:
            yield self
        finally:
            lock.release()

    def recorded_plan(self) -> dict | None:
        """The plan a previous run recorded here; None for a new (missing or empty) folder."""
        path = self.path / PLAN
        if not path.exists():
            others = [p.name for p in self.path.iterdir() if p.name != LOCK] if self.path.is_dir() else []
            if others:
                raise UsageError(f"{self.path}: holds files but no {PLAN}, so it is not a sweep's folder; "
                                 "choose another --name or --output")
            return None
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"{path}: cannot read the sweep's plan ({exc}); delete the folder to start the sweep over") from None
        if not isinstance(document, dict) or document.get("format") != PLAN_FORMAT:
            raise UsageError(f"{path}: is not an nncli sweep plan; choose another --name or --output")
        return document

    def write_plan(self, document: dict) -> None:
        with atomic_write(self.path / PLAN, "w") as f:
            f.write(json.dumps({"format": PLAN_FORMAT, **document}, indent=2) + "\n")

    def trial_folder(self, name: str) -> Path:
        return self.path / name

    def finished(self, names: list[str]) -> dict[str, dict]:
        """trial.json of every trial in ``names`` that finished (an unreadable one: not finished)."""
        records = {}
        for name in names:
            with contextlib.suppress(OSError, ValueError):
                document = json.loads((self.trial_folder(name) / TRIAL_RECORD).read_text(encoding="utf-8"))
                if isinstance(document, dict) and document.get("status") in ("ok", "failed"):
                    records[name] = document
        return records

    def save_trial(self, name: str, record: dict, files: dict[str, bytes]) -> None:
        """The trial's run files and then its record, renamed into place together (a retried
        trial's old files are replaced; a failed trial keeps none)."""
        folder = self.trial_folder(name)
        with FileSet() as changes:
            for file_name, content in files.items():
                with changes.write(folder / file_name) as f:
                    f.write(content)
            if folder.is_dir():
                for old in folder.iterdir():
                    if old.name not in files and old.name != TRIAL_RECORD and not old.name.startswith("."):
                        changes.remove(old)
            with changes.write(folder / TRIAL_RECORD, "w") as f:
                f.write(json.dumps(record, indent=2, allow_nan=False) + "\n")
            changes.commit()

    def write_results(self, columns: list[str], rows: list[dict]) -> Path:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        path = self.path / RESULTS
        with atomic_write(path, "w") as f:
            f.write(buffer.getvalue())
        return path
