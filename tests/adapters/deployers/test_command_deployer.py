"""The ``command`` deployer: quoting, argv lists, timeouts, redaction, status and recorded state."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from rollwave.adapters.deployers import DeployerEnvironment, registry
from rollwave.adapters.deployers.command import (
    CommandDeployer,
    CommandOptions,
    Template,
    parse_status,
)
from rollwave.adapters.deployers.local import path_component, running
from rollwave.adapters.deployers.running import output_text, run_command, simple_argv
from rollwave.core.hashing import config_hash
from rollwave.errors import DeployError
from rollwave.ports.deployer import DesiredState

from .conftest import make_context, make_instance

HOSTILE = [
    "x; touch {mark}",
    "$(touch {mark})",
    "`touch {mark}`",
    "'; touch {mark}; echo '",
    '"; touch {mark}; echo "',
    "a\ntouch {mark}",
    "\\'$(touch {mark})\\'",
    "${{IFS}}touch${{IFS}}{mark}",
    "|| touch {mark} &",
    "-n",
]


def deployer(tmp_path: Path, **options: Any) -> CommandDeployer:
    made = registry.create("command", {"kind": "command", **options},
                           DeployerEnvironment(state_dir=tmp_path / "state"))
    assert isinstance(made, CommandDeployer)
    return made


def desired(version: str = "1.0", service: str = "api", config: Any = None) -> DesiredState:
    config = {"feature": True} if config is None else config
    return DesiredState(versions={service: version}, configs={service: config},
                        config_hashes={service: config_hash(config)})


# --- templates and quoting -------------------------------------------------------------------


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_values_reach_the_command_literally_and_never_run(tmp_path: Path,
                                                                  hostile: str) -> None:
    mark = tmp_path / "pwned"
    value = hostile.format(mark=mark)
    customer = f"x; touch {mark}"
    d = deployer(tmp_path, deploy="printf '%s|' {labels.note} {customer} {target.host}")
    inst = make_instance(customer=customer, labels={"note": value},
                         target={"host": f"$(touch {mark})"})
    result = d.deploy(inst, desired(), make_context(tmp_path)[0])
    assert result.ok, result
    assert not mark.exists()
    assert result.log == f"{value}|{customer}|$(touch {mark})|"


def test_echo_of_a_hostile_label_prints_the_text(tmp_path: Path) -> None:
    mark = tmp_path / "pwned"
    note = f"$(touch {mark}) `touch {mark}` \"; touch {mark}; '"
    d = deployer(tmp_path, deploy="echo {labels.note}")
    ctx, sink = make_context(tmp_path)
    result = d.deploy(make_instance(labels={"note": note}), desired(), ctx)
    assert result.ok, result
    assert not mark.exists()
    assert result.log == note
    assert f"api: $ echo {note}" not in sink.lines  # the command line is logged, quoted
    assert any(line.startswith("api: $ echo ") for line in sink.lines)


def test_multiline_value_stays_one_argument(tmp_path: Path) -> None:
    out = tmp_path / "args"
    d = deployer(tmp_path, deploy=f"printf '%s|' {{labels.note}} > {out}")
    result = d.deploy(make_instance(labels={"note": "a b\nc 'd' \"e\""}), desired(),
                      make_context(tmp_path)[0])
    assert result.ok, result
    assert out.read_text() == "a b\nc 'd' \"e\"|"


def test_argv_list_runs_without_a_shell(tmp_path: Path) -> None:
    mark = tmp_path / "pwned"
    d = deployer(tmp_path, deploy=["printf", "%s|%s|%s", "{labels.note}", "--v={version}",
                                   "{key}"])
    inst = make_instance(labels={"note": f"$(touch {mark}); `id`"})
    result = d.deploy(inst, desired("2.0"), make_context(tmp_path)[0])
    assert result.ok, result
    assert result.log == f"$(touch {mark}); `id`|--v=2.0|acme/prod"
    assert not mark.exists()


@pytest.mark.parametrize(("template", "where"), [
    ("echo '{version}'", "single quotes"),
    ('echo "{labels.note}"', "double quotes"),
    ("echo \"it's {service}\"", "double quotes"),
    ("echo ${version}", "follows '$'"),
    ("echo `echo {labels.note}`", "backticks"),
    ("echo $(( {version} + 1 ))", "arithmetic"),
    ("cat <<EOF\n{labels.note}\nEOF", "here-document"),
    ("echo 'a' \"b\" `c`; cat <<-X\nx\nX\necho {version}", "here-document"),
])
def test_placeholders_where_quoting_cannot_protect_them_are_refused(
        tmp_path: Path, template: str, where: str) -> None:
    d = deployer(tmp_path, deploy=template)
    with pytest.raises(DeployError, match=re.escape(where)):
        d.deploy(make_instance(labels={"note": "n"}), desired(), make_context(tmp_path)[0])


def test_comments_and_here_strings_do_not_confuse_the_quote_check(tmp_path: Path) -> None:
    template = ("# don't forget: it's fine\n"
                "cat <<< {version}; echo x#y {service} # {labels.note} isn't run")
    d = deployer(tmp_path, deploy=template, shell="/bin/bash")  # <<< is bash
    result = d.deploy(make_instance(labels={"note": "n"}), desired("1.2"),
                      make_context(tmp_path)[0])
    assert result.ok, result
    assert result.log == "1.2\nx#y api"


def test_double_quoting_for_commands_a_remote_shell_parses_again(tmp_path: Path) -> None:
    """``ssh host cmd ARGS`` joins ARGS and hands them to a shell again: ``{x!q}`` is for that."""
    mark = tmp_path / "pwned"
    fake_ssh = tmp_path / "ssh"
    fake_ssh.write_text('#!/bin/sh\nhost="$1"; shift; exec /bin/sh -c "$*"\n')
    fake_ssh.chmod(0o755)
    note = f"a b; touch {mark} $(touch {mark}) 'q'"
    inst = make_instance(labels={"note": note}, target={"host": "h1"})
    for template in (f"{fake_ssh} {{target.host}} printf %s {{labels.note!q}}",
                     [str(fake_ssh), "{target.host}", "printf", "%s", "{labels.note!q}"]):
        d = deployer(tmp_path, deploy=template)
        result = d.deploy(inst, desired(), make_context(tmp_path)[0])
        assert result.ok, result
        assert result.log == note
        assert not mark.exists()
        d.stop(inst)


def test_quotes_elsewhere_and_escaped_braces_are_fine(tmp_path: Path) -> None:
    d = deployer(tmp_path, deploy="echo 'v:' {version} \"$ROLLWAVE_SERVICE\" ${{HOME+x}} {{}}")
    result = d.deploy(make_instance(), desired("3.1"), make_context(tmp_path)[0])
    assert result.ok, result
    assert result.log == "v: 3.1 api x {}"


def test_unknown_placeholder_is_a_deploy_error_naming_it_and_the_known_ones(
        tmp_path: Path) -> None:
    d = deployer(tmp_path, deploy="deploy {servise} {version}")
    with pytest.raises(DeployError) as caught:
        d.deploy(make_instance(), desired(), make_context(tmp_path)[0])
    assert "{servise}" in caught.value.message
    for known in ("{service}", "{version}", "{config_file}", "{target.X}", "{labels.X}"):
        assert known in caught.value.message
    assert caught.value.hint


def test_status_cannot_use_deploy_only_placeholders(tmp_path: Path) -> None:
    d = deployer(tmp_path, deploy="true", status="check {version}")
    with pytest.raises(DeployError, match=r"\{version\}"):
        d.actual(make_instance(), ["api"])


def test_missing_target_key_is_a_deploy_error(tmp_path: Path) -> None:
    d = deployer(tmp_path, deploy="ssh {target.host} deploy")
    with pytest.raises(DeployError, match=r"target\.host") as caught:
        d.deploy(make_instance(), desired(), make_context(tmp_path)[0])
    assert "customers/acme.yaml" in (caught.value.hint or "")


def test_nested_target_values_and_non_strings(tmp_path: Path) -> None:
    d = deployer(tmp_path, deploy=["echo", "{target.ssh.host}:{target.port}:{target.tls}"])
    inst = make_instance(target={"ssh": {"host": "h1"}, "port": 22, "tls": True})
    result = d.deploy(inst, desired(), make_context(tmp_path)[0])
    assert result.log == "h1:22:true"


def test_template_parsing_details() -> None:
    assert Template.parse("x", "a {{b}}", ["b"]).problem is None
    assert "not a valid template" in (Template.parse("x", "a {b", ["b"]).problem or "")
    assert "format spec" in (Template.parse("x", "{b!r}", ["b"]).problem or "")
    assert "format spec" in (Template.parse("x", "{b:>4}", ["b"]).problem or "")
    assert Template.parse("x", "{b!q}", ["b"]).problem is None
    assert "unknown placeholder {}" in (Template.parse("x", "{}", ["b"]).problem or "")
    assert Template.parse("x", "echo \\'{b}", ["b"]).problem is None  # escaped quote


def test_environment_variables_carry_the_same_values(tmp_path: Path) -> None:
    script = ('echo "$ROLLWAVE_CUSTOMER|$ROLLWAVE_INSTANCE|$ROLLWAVE_KEY|$ROLLWAVE_ENVIRONMENT|'
              '$ROLLWAVE_SERVICE|$ROLLWAVE_VERSION|$ROLLWAVE_PREVIOUS_VERSION|$ROLLWAVE_CONFIG_HASH|'
              '$ROLLWAVE_TARGET_HOST|$ROLLWAVE_LABELS_NOTE|$ROLLWAVE_REASON|$EXTRA"; '
              'cat "$ROLLWAVE_CONFIG_FILE"')
    d = deployer(tmp_path, deploy=script, env={"EXTRA": "from-options"})
    inst = make_instance(target={"host": "h1"}, labels={"note": "$(x)"})
    want = desired("1.5", config={"a": 1})
    result = d.deploy(inst, want, make_context(tmp_path)[0])
    line, config = result.log.splitlines()
    assert line == (f"acme|prod|acme/prod|production|api|1.5||{config_hash({'a': 1})}|h1|$(x)|"
                    "deploy|from-options")
    assert json.loads(config) == {"a": 1}


def test_config_file_is_private_and_named_per_service(tmp_path: Path) -> None:
    d = deployer(tmp_path, deploy="echo {config_file}")
    result = d.deploy(make_instance(), desired(), make_context(tmp_path)[0])
    path = Path(result.log.strip())
    assert path.name == "api.config.json"
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_path_component_escapes_separators() -> None:
    assert path_component("acme") == "acme"
    assert "/" not in path_component("x; rm -rf /")
    assert path_component("..") == "%2E%2E"
    assert path_component("") == "%"


# --- running ---------------------------------------------------------------------------------


def test_non_zero_exit_fails_with_code_and_last_lines(tmp_path: Path) -> None:
    d = deployer(tmp_path, deploy="echo starting; echo 'disk full' >&2; exit 7")
    ctx, sink = make_context(tmp_path)
    result = d.deploy(make_instance(), desired(), ctx)
    assert not result.ok
    assert "exited with code 7" in result.message
    assert "disk full" in result.message
    assert "starting\ndisk full" in result.log
    assert any("exited with code 7" in line for line in sink.lines)
    assert not any(line == "api: disk full" for line in sink.lines)  # output: result.log only


def test_missing_program_fails_without_raising(tmp_path: Path) -> None:
    d = deployer(tmp_path, deploy=["/nonexistent/deploy-tool", "{version}"])
    result = d.deploy(make_instance(), desired(), make_context(tmp_path)[0])
    assert not result.ok
    assert "could not start" in result.message


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    d = deployer(tmp_path, deploy=f"sleep 30 & echo $! > {pid_file}; echo waiting; wait",
                 timeout=0.5)
    started = time.monotonic()
    result = d.deploy(make_instance(), desired(), make_context(tmp_path)[0])
    assert time.monotonic() - started < 5
    assert not result.ok
    assert "timed out after 0.5s" in result.message
    assert "process group was killed" in result.message
    assert "waiting" in result.log
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 2
    while running(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not running(child)


def test_timeout_escalates_to_sigkill(tmp_path: Path) -> None:
    d = deployer(tmp_path, deploy="trap '' TERM; sleep 30", timeout=0.3, kill_grace=0.3)
    started = time.monotonic()
    result = d.deploy(make_instance(), desired(), make_context(tmp_path)[0])
    assert not result.ok
    assert "timed out" in result.message
    assert time.monotonic() - started < 5


def test_background_child_holding_output_does_not_block(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    d = deployer(tmp_path, deploy=f"sleep 30 & echo $! > {pid_file}; echo done")
    started = time.monotonic()
    result = d.deploy(make_instance(), desired(), make_context(tmp_path)[0])
    assert result.ok
    assert result.log == "done"
    assert time.monotonic() - started < 3
    os.kill(int(pid_file.read_text()), 9)


def test_secrets_are_redacted_everywhere(tmp_path: Path) -> None:
    d = deployer(tmp_path, deploy="echo token=hunter2-secret {labels.pw}; exit 1")
    ctx, sink = make_context(tmp_path, redact=["hunter2-secret", "label-secret"])
    result = d.deploy(make_instance(labels={"pw": "label-secret"}), desired(), ctx)
    assert not result.ok
    for text in (result.message, result.log, sink.text):
        assert "hunter2-secret" not in text
        assert "label-secret" not in text
    assert "token=*** ***" in result.log
    assert "***" in sink.text


def test_output_is_capped_keeping_the_tail(tmp_path: Path) -> None:
    d = deployer(tmp_path, deploy="seq 1 200000; echo the-end", output_limit=4096)
    result = d.deploy(make_instance(), desired(), make_context(tmp_path)[0])
    assert result.ok
    assert len(result.log) < 4096 + 100
    assert result.log.startswith("[... ")
    assert "bytes of earlier output omitted" in result.log
    assert result.log.endswith("200000\nthe-end")
    first_kept = result.log.splitlines()[1]
    assert first_kept.isdigit()  # a whole line, not a fragment


def test_truncation_never_reveals_part_of_a_multiline_secret() -> None:
    secret = "-----BEGIN KEY-----\nAAAAsecretline\n-----END KEY-----"
    data = ("x" * 100 + "\n" + secret + "\nafter").encode()
    cut = data[data.index(b"BEGIN") + 3:]
    text = output_text(cut, 200, [secret])
    assert "secretline" not in text
    assert "END KEY" not in text
    assert text.endswith("after")
    one_line = output_text(b"cret-token-value and more", 100, ["secret-token-value"])
    assert one_line == "[... 100 bytes of earlier output omitted ...]\n*** and more"


def test_run_command_reports_stderr_separately_when_asked() -> None:
    outcome = run_command(["/bin/sh", "-c", "echo out; echo err >&2"], env=dict(os.environ),
                          timeout=5, merge_stderr=False)
    assert outcome.ok
    assert outcome.output == b"out\n"
    assert outcome.errors == b"err\n"


@pytest.mark.parametrize(("command", "words"), [
    ("sleep 0.1", ["sleep", "0.1"]),
    ("/opt/app/deploy 'x; rm -rf /' \"a b\" --flag=1 user@host:22",
     ["/opt/app/deploy", "x; rm -rf /", "a b", "--flag=1", "user@host:22"]),
    ("deploy '$(touch /tmp/x)' '`id`' 'it'\"'\"'s'", ["deploy", "$(touch /tmp/x)", "`id`", "it's"]),
    ("tool ''", ["tool", ""]),
])
def test_simple_commands_are_split_as_the_shell_would(command: str, words: list[str]) -> None:
    assert simple_argv(command) == words


@pytest.mark.parametrize("command", [
    "echo hi", "cd /tmp", "exit 3", "true", "test -f x", ". ./env", "if true; then :; fi",
    "FOO=1 tool", "tool $HOME", "tool ~/x", "tool *.txt", "tool > out", "a | b", "a && b",
    "a; b", "tool &", "tool # note", 'tool "$HOME"', 'tool "`id`"', "tool \\x", "a\nb",
    "(tool)", "{ tool; }", "tool 'unterminated", "", "   ",
])
def test_anything_the_shell_would_interpret_keeps_the_shell(command: str) -> None:
    assert simple_argv(command) is None


def test_a_simple_command_runs_without_a_shell(tmp_path: Path) -> None:
    script = tmp_path / "ppid.py"
    script.write_text("import os, sys; print(open(f'/proc/{os.getppid()}/comm').read().strip())")
    outcome = run_command(["/bin/sh", "-c", f"python3 {script}"], env=dict(os.environ),
                          timeout=10)
    assert outcome.ok, outcome
    assert outcome.output.decode().strip() not in ("sh", "dash")  # parent is us, not a shell
    other = run_command(["/bin/sh", "-c", f"python3 {script}; true"], env=dict(os.environ),
                        timeout=10)
    assert other.output.decode().strip() in ("sh", "dash")


def test_a_script_without_interpreter_line_still_runs_through_the_shell(tmp_path: Path) -> None:
    script = tmp_path / "deploy-script"
    script.write_text("echo ran as a shell script\n")
    script.chmod(0o755)
    outcome = run_command(["/bin/sh", "-c", str(script)], env=dict(os.environ), timeout=10)
    assert outcome.ok, outcome
    assert outcome.output == b"ran as a shell script\n"


def test_a_missing_program_in_a_simple_command_fails_clearly(tmp_path: Path) -> None:
    d = deployer(tmp_path, deploy="/nonexistent/deploy-tool {version}")
    result = d.deploy(make_instance(), desired(), make_context(tmp_path)[0])
    assert not result.ok
    assert "/nonexistent/deploy-tool" in result.message


# --- state: status, recorded, idempotence ----------------------------------------------------


def test_recorded_state_makes_a_repeated_deploy_a_no_op(tmp_path: Path) -> None:
    count = tmp_path / "count"
    d = deployer(tmp_path, deploy=f"echo {{version}} >> {count}")
    inst = make_instance()
    want = desired("1.0")
    assert d.actual(inst, ["api"]).versions == {}
    assert d.deploy(inst, want, make_context(tmp_path)[0]).ok
    actual = d.actual(inst, ["api"])
    assert actual.satisfies(want)
    assert actual.config_hashes == {"api": want.config_hashes["api"]}
    # a new deployer object (e.g. after an orchestrator restart) reads the same record
    again = deployer(tmp_path, deploy=f"echo {{version}} >> {count}")
    assert again.actual(inst, ["api"]).satisfies(want)
    result = again.deploy(inst, want, make_context(tmp_path)[0])
    assert result.ok
    assert "already" in result.message
    assert count.read_text() == "1.0\n"
    # a config change is a change
    assert again.deploy(inst, desired("1.0", config={"feature": False}),
                        make_context(tmp_path)[0]).ok
    assert count.read_text() == "1.0\n1.0\n"


def test_failed_deploy_forgets_the_old_version(tmp_path: Path) -> None:
    d = deployer(tmp_path, deploy="test {version} != 2.0")
    inst = make_instance()
    assert d.deploy(inst, desired("1.0"), make_context(tmp_path)[0]).ok
    assert not d.deploy(inst, desired("2.0"), make_context(tmp_path)[0]).ok
    # what runs now is unknown, so a later rollback to 1.0 is not skipped
    assert "api" not in d.actual(inst, ["api"]).versions
    assert d.deploy(inst, desired("1.0"), make_context(tmp_path)[0]).ok


def test_previous_version_and_rollback_template(tmp_path: Path) -> None:
    log = tmp_path / "log"
    d = deployer(tmp_path, deploy=f"echo deploy {{version}} from {{previous_version}} >> {log}",
                 rollback=f"echo rollback to {{version}} from {{previous_version}} >> {log}")
    inst = make_instance()
    d.deploy(inst, desired("1.0"), make_context(tmp_path)[0])
    d.deploy(inst, desired("2.0"), make_context(tmp_path)[0])
    d.deploy(inst, desired("1.0"), make_context(tmp_path, reason="rollback")[0])
    assert log.read_text().splitlines() == [
        "deploy 1.0 from ", "deploy 2.0 from 1.0", "rollback to 1.0 from 2.0"]


def test_rollback_defaults_to_the_deploy_command(tmp_path: Path) -> None:
    d = deployer(tmp_path, deploy="echo {version} $ROLLWAVE_REASON")
    result = d.deploy(make_instance(), desired("0.9"), make_context(tmp_path, reason="rollback")[0])
    assert result.ok
    assert result.log == "0.9 rollback"
    assert result.message.startswith("rolled back api 0.9")


def test_status_command_is_the_truth(tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    deploy = (f"echo '{{{{\"version\": \"'$ROLLWAVE_VERSION'\", \"config_hash\": "
              f"\"'$ROLLWAVE_CONFIG_HASH'\"}}}}' > {remote}/$ROLLWAVE_SERVICE")
    d = deployer(tmp_path, deploy=deploy,
                 status=f"echo ssh banner >&2; cat {remote}/{{service}}")
    inst = make_instance(services=("api", "worker"))
    want = DesiredState(versions={"api": "1.0", "worker": "1.0"},
                        config_hashes={"api": "h1", "worker": "h2"})
    before = d.actual(inst, ["api", "worker"])
    assert before.versions == {}
    assert "exited with code 1" in before.detail
    assert d.deploy(inst, want, make_context(tmp_path)[0]).ok
    assert d.actual(inst, ["api", "worker"]).satisfies(want)
    # somebody changes the remote by hand: status sees it, the recorded state does not matter
    (remote / "worker").write_text("0.9 h2\n")
    now = d.actual(inst, ["api", "worker"])
    assert now.versions == {"api": "1.0", "worker": "0.9"}
    assert not now.satisfies(want)
    ctx, sink = make_context(tmp_path)
    assert d.deploy(inst, want, ctx).ok
    assert "api: already runs 1.0; skipped" in sink.lines
    assert d.actual(inst, ["api", "worker"]).satisfies(want)


@pytest.mark.parametrize(("output", "expected"), [
    ('{"version": "1.2.3", "config_hash": "abc"}', ("1.2.3", "abc")),
    ('banner\n{"version": "1.2.3"}\n', ("1.2.3", None)),
    ('{"version": null}', (None, None)),
    ('{"version": 2}', ("2", None)),
    ("1.2.3\n", ("1.2.3", None)),
    ("1.2.3 abc\n", ("1.2.3", "abc")),
    ("", (None, None)),
    ("service is not running at all", (None, None)),
])
def test_parse_status(output: str, expected: tuple[str | None, str | None]) -> None:
    assert parse_status(output) == expected


def test_stop_and_endpoint_templates(tmp_path: Path) -> None:
    stopped = tmp_path / "stopped"
    d = deployer(tmp_path, deploy="true", stop=f"echo {{service}} >> {stopped}",
                 endpoint="https://{target.host}:8443")
    inst = make_instance(services=("api", "worker"), target={"host": "h1.example"})
    assert d.endpoint(inst, "api") == "https://h1.example:8443"
    d.deploy(inst, DesiredState(versions={"api": "1", "worker": "1"}), make_context(tmp_path)[0])
    d.stop(inst)
    assert stopped.read_text() == "api\nworker\n"
    assert d.actual(inst, ["api", "worker"]).versions == {}
    plain = deployer(tmp_path, deploy="true")
    assert plain.endpoint(make_instance(url="http://x:1"), "api") == "http://x:1"


def test_several_services_deploy_in_instance_order_and_stop_at_the_first_failure(
        tmp_path: Path) -> None:
    log = tmp_path / "log"
    d = deployer(tmp_path, deploy=f'echo {{service}} >> {log}; test {{service}} != worker')
    inst = make_instance(services=("web", "worker", "api"))
    want = DesiredState(versions={"api": "1", "web": "1", "worker": "1"})
    result = d.deploy(inst, want, make_context(tmp_path)[0])
    assert not result.ok
    assert "worker" in result.message
    assert log.read_text() == "web\nworker\n"
    assert d.actual(inst, ["web", "worker", "api"]).versions == {"web": "1"}


# --- options ---------------------------------------------------------------------------------


def test_options_are_validated_by_the_registry_model() -> None:
    model = registry.options_model("command")
    assert model is CommandOptions
    with pytest.raises(ValidationError, match="deploy"):
        model.model_validate({})
    with pytest.raises(ValidationError, match="extra"):
        model.model_validate({"deploy": "true", "deploi": "x"})
    with pytest.raises(ValidationError, match="empty"):
        model.model_validate({"deploy": "  "})
    with pytest.raises(ValidationError):
        model.model_validate({"deploy": "true", "timeout": 0})
    parsed = model.model_validate({"deploy": ["a", "b"], "timeout": "5m", "env": {"A": "1"}})
    assert isinstance(parsed, CommandOptions)
    assert parsed.timeout == 300.0


def test_many_parallel_deploys(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    d = deployer(tmp_path, deploy="true")
    instances = [make_instance(f"c{i}") for i in range(100)]
    want = desired()
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda i: d.deploy(i, want, make_context(tmp_path)[0]),
                                instances))
    assert all(r.ok for r in results)
    assert all(d.actual(i, ["api"]).satisfies(want) for i in instances)


def test_validate_reports_bad_deployer_options_with_file_and_line(tmp_path: Path) -> None:
    from rollwave.workspace.loader import validate_workspace

    (tmp_path / "customers").mkdir()
    (tmp_path / "rollwave.yaml").write_text(
        "project: demo\n"
        "environments: {production: {}}\n"
        "services: {api: {deployer: ssh}}\n"
        "deployers:\n"
        "  ssh:\n"
        "    kind: command\n"
        "    deploy: ssh {target.host} deploy {version}\n"
        "    timout: 30\n"
        "  here:\n"
        "    kind: local\n"
        "    probe_timeout: soon\n"
        "policies: {standard: {waves: [{name: all, select: rest}]}}\n")
    (tmp_path / "customers" / "acme.yaml").write_text(
        "id: acme\ninstances: {prod: {environment: production, target: {host: h1}}}\n")
    rendered = [p.render() for p in validate_workspace(tmp_path)]
    assert any(r.startswith("rollwave.yaml:8") and "timout" in r for r in rendered), rendered
    assert any(r.startswith("rollwave.yaml:11") for r in rendered), rendered
