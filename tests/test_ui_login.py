"""Optional password login and where the chat may listen without one."""

import pytest

from persona.ui.launch import ui_command
from persona.ui.login import (LOCAL_USER, LoginRequired, auth_secret, check_exposure,
                              credentials_ok, is_loopback, keeps_threads, signs_in_locally)
from persona.ui.settings import UISettings, from_env

BASE = {"PERSONA_BASE_URL": "http://127.0.0.1:8000/v1", "PERSONA_MODEL": "xiaocong"}


def test_login_is_off_by_default_and_on_with_a_password():
    assert not from_env(BASE).login_required
    settings = from_env({**BASE, "PERSONA_UI_PASSWORD": " s3cret "})
    assert settings.login_required and settings.login_password == " s3cret "
    assert settings.login_user == "persona"
    assert from_env({**BASE, "PERSONA_UI_PASSWORD": "p", "PERSONA_UI_USER": "ada"}).login_user == "ada"
    assert not from_env({**BASE, "PERSONA_UI_PASSWORD": ""}).login_required


def test_credentials_must_match_both_user_and_password():
    settings = UISettings(base_url="http://h/v1", model="m", login_user="ada", login_password="pw")
    assert credentials_ok(settings, "ada", "pw") and credentials_ok(settings, " ada ", "pw")
    assert not credentials_ok(settings, "ada", "PW") and not credentials_ok(settings, "bob", "pw")
    assert not credentials_ok(settings, "ada", "")
    assert not credentials_ok(UISettings(base_url="http://h/v1", model="m"), "persona", "")


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True), ("::1", True),
    ("[::1]", True), ("0.0.0.0", False), ("::", False), ("192.168.1.5", False),
    ("example.org", False),
])
def test_loopback_hosts(host, loopback):
    assert is_loopback(host) is loopback


def test_a_public_host_needs_a_password_or_an_explicit_opt_out():
    check_exposure("127.0.0.1", None)
    check_exposure("0.0.0.0", "pw")
    check_exposure("0.0.0.0", None, allow_no_login=True)
    with pytest.raises(LoginRequired, match="PERSONA_UI_PASSWORD.*--allow-no-login"):
        check_exposure("0.0.0.0", None)
    with pytest.raises(LoginRequired):
        check_exposure("0.0.0.0", "")


def test_launch_refuses_a_public_host_without_login_and_carries_the_password(tmp_path, monkeypatch):
    with pytest.raises(LoginRequired):
        ui_command(base_url="http://h/v1", model="m", host="0.0.0.0", app_root=tmp_path)
    launch = ui_command(base_url="http://h/v1", model="m", host="0.0.0.0", app_root=tmp_path,
                        password="pw", user="ada")
    assert launch.env["PERSONA_UI_PASSWORD"] == "pw" and launch.env["PERSONA_UI_USER"] == "ada"
    assert from_env(launch.env).login_required
    monkeypatch.setenv("PERSONA_UI_PASSWORD", "old")
    monkeypatch.setenv("PERSONA_UI_USER", "old")
    launch = ui_command(base_url="http://h/v1", model="m", app_root=tmp_path)
    assert "PERSONA_UI_PASSWORD" not in launch.env and "PERSONA_UI_USER" not in launch.env


def test_auth_secret_is_kept_when_given_and_fresh_otherwise():
    assert auth_secret({"CHAINLIT_AUTH_SECRET": "given"}) == "given"
    first, second = auth_secret({}), auth_secret({})
    assert first != second and len(first) >= 32


@pytest.mark.parametrize("command", ["ui", "up"])
def test_cli_refuses_a_public_chat_without_login_before_starting_anything(
        command, tmp_path, monkeypatch, capsys):
    from persona.cli import main

    monkeypatch.delenv("PERSONA_UI_PASSWORD", raising=False)
    monkeypatch.setenv("PERSONA_HOME", str(tmp_path / "home"))
    extra = ["--out", str(tmp_path / "run")] if command == "up" else []
    assert main([command, "--host", "0.0.0.0", *extra]) == 2
    assert "PERSONA_UI_PASSWORD" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path / "home").exists()


@pytest.mark.parametrize("host, password, local, threads", [
    ("127.0.0.1", None, True, True),      # make demo: the local user, no prompt
    ("localhost", None, True, True),
    ("127.0.0.1", "pw", False, True),     # the password's user
    ("0.0.0.0", "pw", False, True),
    ("0.0.0.0", None, False, False),      # --allow-no-login: nobody signed in, nothing stored
])
def test_who_is_signed_in_and_whether_threads_are_kept(host, password, local, threads):
    settings = from_env({**BASE, **({"PERSONA_UI_PASSWORD": password} if password else {})})
    assert signs_in_locally(settings, host) is local
    assert keeps_threads(settings, host) is threads
    assert LOCAL_USER != settings.login_user
