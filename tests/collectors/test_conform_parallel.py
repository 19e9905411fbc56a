"""conform --jobs and --shard: the same verdicts however the examples are spread over jobs and machines.

The collector fails on some examples only (it exits 0 without saving on
fadump machines and saves honestly on kdump ones), so a verdict that moved to
another example, or a numbering out of order, shows.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
from pathlib import Path
from xml.etree import ElementTree

import pytest

from mockfs.conform.campaign import draw_examples
from mockfs.conform.pool import Job, run_ordered

from ..support import EVENT_TIMEOUT, run_cli

SCRIPT = ("if [ -e /sys/kernel/fadump_enabled ] || [ -e /sys/kernel/fadump ]; then exit 0; fi; "
          "umask 077; cat /proc/vmcore > {output}/vmcore")
#: Seed 4 draws fadump and kdump machines mixed (small ones: ppc64le, no faults).
CAMPAIGN = ("conform", "--arch", "ppc64le", "--faults", "none", "--examples", "6", "--seed", "4")


class Campaign:
    """One conform run: its process, console verdicts and JUnit test cases."""

    def __init__(self, tmp: Path, *options: str) -> None:
        junit = tmp / "conform.xml"
        self.proc: subprocess.CompletedProcess[str] = run_cli(*CAMPAIGN, "--junit", str(junit), *options, "--",
                                                              "sh", "-c", SCRIPT)
        root = ElementTree.parse(junit).getroot()
        self.cases = {c.get("name"): (f.get("message") if (f := c.find("failure")) is not None else None)
                      for c in root.findall("testcase")}

    @property
    def console(self) -> list[str]:
        """The example lines and the problems under them, without their times."""
        lines = self.proc.stderr.split("\nminimal failure:")[0].splitlines()
        return [re.sub(r"  \(\d+\.\d s\)$", "", line) for line in lines if line.startswith(("[", "     "))]

    @property
    def verdicts(self) -> dict[int, list[str]]:
        """Each example's line and problems, by its number."""
        out: dict[int, list[str]] = {}
        for line in self.console:
            if line.startswith("["):
                number = int(line[1:].split("/")[0])
                out[number] = []
            out[number].append(line)
        return out

    @property
    def numbers(self) -> list[int]:
        return list(self.verdicts)

    @property
    def minimal(self) -> str:
        return self.proc.stderr.partition("\nminimal failure:")[2]

    @property
    def summary(self) -> str:
        return self.proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> Campaign:
    """The whole campaign, two examples at a time."""
    return Campaign(tmp_path_factory.mktemp("whole"), "--jobs", "2")


def test_the_verdicts_are_the_same_one_job_or_two(whole: Campaign, tmp_path: Path) -> None:
    assert whole.proc.returncode == 1, whole.proc.stderr
    assert whole.proc.stderr.splitlines()[0].endswith(", 2 jobs")
    marks = [line.split()[2] for line in whole.console if line.startswith("[")]
    assert {"pass", "FAIL"} <= set(marks), whole.proc.stderr  # the verdicts differ from example to example
    assert whole.numbers == [1, 2, 3, 4, 5, 6]
    one = Campaign(tmp_path, "--jobs", "1")
    assert one.proc.returncode == 1 and one.proc.stderr.splitlines()[0].endswith(", 1 job")
    assert one.console == whole.console
    assert one.cases == whole.cases
    assert one.summary == whole.summary == f"{marks.count('pass')} passed, {marks.count('FAIL')} failed"
    # The first failure is shrunk one run at a time after the examples: the same minimal one, in as many runs.
    assert "exit status 0 although the save is incomplete" in whole.minimal
    assert one.minimal == whole.minimal


def test_the_shards_add_up_to_the_whole_campaign(whole: Campaign, tmp_path: Path) -> None:
    shards = []
    for k in (1, 2):
        (tmp_path / str(k)).mkdir()
        shards.append(Campaign(tmp_path / str(k), "--shard", f"{k}/2"))
    assert [s.numbers for s in shards] == [[1, 3, 5], [2, 4, 6]]
    for shard, k in zip(shards, (1, 2), strict=True):
        assert f"shard {k}/2: 3 of them" in shard.proc.stderr.splitlines()[0]
        assert shard.summary.endswith(f"(shard {k}/2 of 6 examples)")
        assert shard.proc.returncode == (1 if any(shard.cases.values()) else 0)
    assert {**shards[0].verdicts, **shards[1].verdicts} == whole.verdicts
    assert {**shards[0].cases, **shards[1].cases} == whole.cases
    assert len(shards[0].cases) + len(shards[1].cases) == len(whole.cases) == 6


@pytest.mark.parametrize(("option", "value", "says"), [
    ("--shard", "0/2", "K must be from 1 to N"),
    ("--shard", "3/2", "K must be from 1 to N"),
    ("--shard", "x", "is not K/N"),
    ("--shard", "1/0", "K must be from 1 to N"),
    ("--jobs", "0", "at least one job"),
    ("--jobs", "-2", "at least one job"),
    ("--jobs", "x", "is not a number of jobs"),
])
def test_bad_jobs_and_shards_are_refused_in_one_line(option: str, value: str, says: str) -> None:
    proc = run_cli("conform", "--examples", "1", option, value, "--", "true", "{output}")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and f"argument {option}" in proc.stderr and says in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "[  1/1]" not in proc.stderr


def test_results_come_in_campaign_order_whatever_order_they_finish_in() -> None:
    finished: list[int] = []
    third_done = threading.Event()

    def run(job: Job[str]) -> str:
        if job.number == 2:  # waits until the third has finished: runs beside it, and ends after it
            assert third_done.wait(EVENT_TIMEOUT), "the second and third jobs did not run at once"
        finished.append(job.number)
        if job.number == 3:
            third_done.set()
        return job.item

    handed: list[str] = []
    results, interrupted = run_ordered([Job(n, f"example {n}") for n in (1, 2, 3, 4)], run, workers=2, space=0,
                                       on_result=handed.append)
    assert finished[0] == 1 and finished.index(3) < finished.index(2)  # the first runs alone, then two at a time
    assert results == handed == ["example 1", "example 2", "example 3", "example 4"] and not interrupted


def test_examples_whose_dumps_would_not_fit_together_run_one_at_a_time() -> None:
    lock = threading.Lock()
    running = [0, 0]  # now, most at once

    def run(job: Job[int]) -> int:
        with lock:
            running[0] += 1
            running[1] = max(running)
        # A process of its own, as an example's run supervisor is: time for another job to start, if allowed.
        subprocess.run(["true"], check=True)
        with lock:
            running[0] -= 1
        return job.number

    jobs = [Job(n, n, cost=600) for n in range(1, 7)]
    assert run_ordered(jobs, run, workers=4, space=1000) == ([1, 2, 3, 4, 5, 6], False)
    assert running[1] == 1


def test_a_stop_ends_the_examples_under_way_through_their_processes() -> None:
    started = threading.Barrier(3, timeout=EVENT_TIMEOUT)  # two jobs and the test
    codes: list[int] = []

    def run(job: Job[int]) -> int:
        if job.number == 1:
            return 1
        with subprocess.Popen(["sleep", "600"]) as proc:  # a run supervisor that would go on for long
            started.wait()
            codes.append(proc.wait())
        return job.number

    stop = threading.Event()
    watcher = threading.Thread(target=lambda: (started.wait(), stop.set()), daemon=True)
    watcher.start()
    results, interrupted = run_ordered([Job(n, n) for n in (1, 2, 3, 4)], run, workers=2, space=0,
                                       should_stop=stop.is_set)
    assert interrupted and sorted(codes) == [-signal.SIGTERM, -signal.SIGTERM]
    assert results[0] == 1 and 4 not in results  # the examples not started never are


@pytest.mark.parametrize("seed", [1, 2, None])
def test_n_examples_are_n_distinct_examples(seed: int | None) -> None:
    # Seed 1 once drew one example twice in 100 and so ran 99.
    drawn = draw_examples(100, seed)
    assert len({example.key() for example in drawn}) == len(drawn) == 100
    assert [e.key() for e in draw_examples(100, seed)] == [e.key() for e in drawn]  # a seed is one list
