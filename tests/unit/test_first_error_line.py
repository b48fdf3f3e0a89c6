"""The one line an orchestrator shows for a failed step process (step_processes)."""

from __future__ import annotations

from pathlib import Path

from stepwire.orchestrators.step_processes import first_error_line


def test_the_entrypoints_own_line_wins(tmp_path: Path) -> None:
    log = tmp_path / "s.log"
    log.write_text("noise\nstepwire: step_failed: boom\nTraceback ...\n")
    assert first_error_line(log, 70) == "step_failed: boom"


def test_an_interpreter_without_stepwire_is_named_in_one_line(tmp_path: Path) -> None:
    log = tmp_path / "s.log"
    log.write_text(
        "/usr/bin/python3: Error while finding module specification for "
        "'stepwire.entrypoints.step_entrypoint' (ModuleNotFoundError: No module named "
        "'stepwire')\n"
    )
    assert first_error_line(log, 1) == (
        "the step's interpreter /usr/bin/python3 cannot import stepwire (exit code 1): "
        "install stepwire there, or launch steps with the interpreter that has it"
    )


def test_otherwise_the_exit_code_and_the_log(tmp_path: Path) -> None:
    log = tmp_path / "s.log"
    log.write_text("Killed\n")
    assert first_error_line(log, 137) == f"exit code 137, see {log}"
