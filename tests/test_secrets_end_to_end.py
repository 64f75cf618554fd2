"""No planted secret reaches any file of a real `perfdoctor run`: secrets on the script's command
line (every form of issue 14) and in the message of the exception that ends it. Every file under
the run directory is searched, profiler traces decompressed and TensorBoard event files read back;
then again after `perfdoctor report RUN` re-derives the reports."""

from __future__ import annotations

import gzip
import secrets
import string
from pathlib import Path

import pytest

from conftest import run_perfdoctor

WORKLOADS = Path(__file__).parent / "workloads"


def planted() -> list[str]:
    """Secrets of no recognisable shape: only their context can give them away."""
    alphabet = string.ascii_letters + string.digits
    return ["".join(secrets.choice(alphabet) for _ in range(14)) + str(i) for i in range(9)]


def file_texts(root: Path) -> dict[Path, bytes]:
    """Every file under root as bytes; gzip decompressed; TensorBoard events also as read back."""
    found: dict[Path, bytes] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        if "tfevents" in path.name:
            from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

            events = list(EventFileLoader(str(path)).Load())
            assert events, f"{path}: no events read back"
            data += "\n".join(str(event) for event in events).encode()
        found[path] = data
    return found


@pytest.mark.slow
def test_no_planted_secret_reaches_any_file_of_a_run(tmp_path):
    password, key, short, plain, query, sig, hook, cookie, bearer = planted()
    out = tmp_path / "run"
    argv = [
        "--db-password", password, "--api-key", key, "-p", short, f"--pass={plain}",
        "--data", f"https://blob.example.com/train.tar?token={query}&sig={sig}",
        f'--headers={{"Authorization": "Bearer {bearer}"}}',
        "--notify", f"https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/{hook}",
        "--cookie", f"session={cookie}", "--lr", "3e-4",
    ]
    result = run_perfdoctor("run", "-q", "--out", str(out), "--profile-steps", "2-3",
                            str(WORKLOADS / "fails_with_secret.py"), *argv, cwd=tmp_path, env={"OMP_NUM_THREADS": "1"})
    assert result.returncode == 1, result.stderr
    assert password in result.stderr  # the script's own traceback is the user's terminal, untouched
    texts = file_texts(out)
    assert out / "run" / "report.json" not in texts  # (layout sanity: reports at the top)
    assert {"report.json", "report.html"} <= {p.name for p in texts}
    assert any(p.name.endswith(".pt.trace.json.gz") for p in texts), sorted(texts)
    assert any("tfevents" in p.name for p in texts), sorted(texts)
    run_json = texts[out / "raw" / "run.jsonl"].decode()  # the run stream: argv and how it ended
    assert "3e-4" in run_json and "postgresql://trainer:***@db.internal" in run_json  # redacted, not dropped
    for secret in (password, key, short, plain, query, sig, hook, cookie, bearer):
        leaks = [str(path.relative_to(out)) for path, data in texts.items() if secret.encode() in data]
        assert not leaks, f"{secret} reached {leaks}"

    again = run_perfdoctor("report", "-q", str(out), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    for path, data in file_texts(out).items():
        for secret in (password, key, short, plain, query, sig, hook, cookie, bearer):
            assert secret.encode() not in data, f"{secret} reached {path} after `perfdoctor report`"


def test_reports_re_derived_from_an_older_run_json_are_redacted_too(tmp_path, capsys):
    """raw/run.json written before redaction caught every form: `perfdoctor report RUN` masks
    its argv, error and collector errors again before writing anything."""
    import json
    import shutil

    from perfdoctor.cli import main

    run = shutil.copytree(Path(__file__).parent / "data" / "run_reference_cnn", tmp_path / "run")
    password, token, cookie, collector = planted()[:4]
    raw = json.loads((run / "raw" / "run.json").read_text())
    raw["argv"] = ["-p", password, "--headers", f'{{"Authorization": "Bearer {token}"}}', "--cookie", f"session={cookie}"]
    raw["status"], raw["exit_code"] = "failed", 1
    raw["error"] = {"type": "OperationalError", "message": f"postgresql://u:{password}@db/x unreachable"}
    raw["collector_errors"] = {"host.stop": f"RuntimeError: api_key={collector}"}
    (run / "raw" / "run.json").write_text(json.dumps(raw))
    assert main(["report", "-q", str(run)]) == 0, capsys.readouterr().err
    for name in ("report.json", "report.html"):
        text = (run / name).read_text()
        for secret in (password, token, cookie, collector):
            assert secret not in text, (name, secret)
    produced = json.loads((run / "report.json").read_text())
    assert produced["run"]["error"]["message"] == "postgresql://u:***@db/x unreachable"
    assert any("host.stop" in note and "api_key=***" in note for note in produced["notes"]), produced["notes"]
