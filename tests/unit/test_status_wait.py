"""status --wait-for: a pipeline waits for someone else's run without polling itself."""

from __future__ import annotations

import pytest

from deployer import cli
from deployer.record import Journal, RunRecord
from deployer.status import wait_for

RUN = dict(strategy="canary", app="hello", from_image="hello:v1", to_image="hello:v2")


class Clock:
    """A run's journal moving on while the waiter sleeps: ``then`` is called at each sleep."""

    def __init__(self, then):
        self.now, self.then = 0.0, list(then)

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        if self.then:
            self.then.pop(0)()


def journal(gw, **changes) -> Journal:
    j = Journal(gw, "hello", RunRecord(**RUN, id="r1", **changes))
    j.update()
    return j


@pytest.mark.parametrize(("state", "verdict", "code"), [
    ("promoted", "promoted", 0), ("done", "promoted", 0), ("done", "rolled-back", 0),
    ("promoted", "rejected", 1), ("done", "rejected", 1), ("promoted", "unsafe", 3),
    ("paused", "rejected", 1)])
def test_the_run_in_progress_ends_and_the_wait_exits_as_it_ended(cli_cluster, state,
                                                                  verdict, code):
    j = journal(cli_cluster, phase="running", step="verify traffic")
    clock = Clock([lambda: j.update(step="promote"),
                   lambda: j.finish(phase="done", verdict=verdict, message="why")])
    said: list[str] = []
    got, what = wait_for(cli_cluster, "hello", state, 100.0, clock=lambda: clock.now,
                         sleep=clock.sleep, said=said.append)
    assert (got, what) == (code, f"canary run r1 ended {verdict}")
    assert said == ["waiting for " + state + ": run r1 running at 'verify traffic'",
                    "waiting for " + state + ": run r1 running at 'promote'"]


def test_paused_is_reached_at_the_gate_and_promoted_waits_on_past_it(cli_cluster):
    j = journal(cli_cluster, phase="running")
    clock = Clock([lambda: j.update(phase="paused", step="gate")])
    assert wait_for(cli_cluster, "hello", "paused", 100.0, clock=lambda: clock.now,
                    sleep=clock.sleep)[0] == 0
    clock = Clock([lambda: None, lambda: j.finish(phase="done", verdict="promoted")])
    assert wait_for(cli_cluster, "hello", "promoted", 100.0, clock=lambda: clock.now,
                    sleep=clock.sleep) == (0, "canary run r1 ended promoted")
    assert clock.now == 4.0  # it waited at the gate until someone promoted


def test_with_no_run_the_last_release_answers_and_past_the_deadline_it_is_70(cli_cluster):
    assert wait_for(cli_cluster, "hello", "done", 100.0)[0] == 2  # nothing to wait for
    journal(cli_cluster, phase="done").finish(phase="done", verdict="rejected")
    assert wait_for(cli_cluster, "hello", "promoted", 100.0) == (1, "canary run r1 ended "
                                                                   "rejected")
    journal(cli_cluster, phase="running", step="verify")
    clock = Clock([])
    code, what = wait_for(cli_cluster, "hello", "done", 5.0, clock=lambda: clock.now,
                          sleep=clock.sleep)
    assert code == 70 and "running at 'verify'" in what


def test_the_cli_refuses_another_state_and_an_unknown_app(cli_cluster, capsys):
    assert cli.run(["status", "--app", "hello", "--wait-for", "finished"]) == 2
    assert "--wait-for 'finished' is invalid" in capsys.readouterr().err
    assert cli.run(["status", "--app", "nope", "--wait-for", "done"]) == 2


def test_watch_redraws_on_a_terminal_and_prints_changes_only_elsewhere(cli_cluster):
    import io

    from deployer.status import watch

    out = io.StringIO()
    watch(cli_cluster, "hello", out, tty=True, sleep=lambda s: None, rounds=2)
    assert out.getvalue().count("\x1b[H\x1b[2J") == 2 and "app hello" in out.getvalue()
    plain = io.StringIO()
    scaled = iter([lambda: None, lambda: cli_cluster.deployments["hello"]["spec"].update(
        replicas=5)])
    watch(cli_cluster, "hello", plain, tty=False, sleep=lambda s: next(scaled)(), rounds=3)
    text = plain.getvalue()
    assert "\x1b" not in text and text.count("--- ") == 2  # the same view is not repeated
    assert "5 desired" in text.split("--- ")[-1]
