"""The UI's configuration and the command that starts it."""

import subprocess
import sys

import pytest

from persona.paths import REPO_ROOT
from persona.ui.launch import APP_PATH, ui_command
from persona.ui.settings import NO_KEY, SettingsError, from_env

BASE = {"PERSONA_BASE_URL": "http://127.0.0.1:8000/v1/", "PERSONA_MODEL": "xiaocong"}


def test_settings_defaults():
    settings = from_env(BASE)
    assert settings.base_url == "http://127.0.0.1:8000/v1"
    assert settings.model == "xiaocong" and settings.api_key == NO_KEY
    assert settings.max_tokens == 512 and settings.card_path is None


def test_settings_read_every_variable():
    settings = from_env({**BASE, "PERSONA_API_KEY": "k", "PERSONA_CARD": "cards/x.yaml",
                         "PERSONA_MAX_TOKENS": "64", "PERSONA_TEMPERATURE": "0.3"})
    assert (settings.api_key, settings.card_path, settings.max_tokens, settings.temperature) == (
        "k", "cards/x.yaml", 64, 0.3)


def test_settings_ignore_openai_variables():
    # Chainlit rewrites OPENAI_API_KEY when CI=true; the UI must not read it.
    settings = from_env({**BASE, "OPENAI_API_KEY": "sk-other", "OPENAI_BASE_URL": "http://x/v1"})
    assert settings.api_key == NO_KEY and settings.base_url == "http://127.0.0.1:8000/v1"


@pytest.mark.parametrize(
    "env, named",
    [
        ({"PERSONA_MODEL": "m"}, "PERSONA_BASE_URL"),
        ({"PERSONA_BASE_URL": "127.0.0.1:8000"}, "PERSONA_BASE_URL"),
        ({"PERSONA_BASE_URL": "http://h/v1"}, "PERSONA_MODEL"),
        ({**BASE, "PERSONA_MAX_TOKENS": "lots"}, "PERSONA_MAX_TOKENS"),
        ({**BASE, "PERSONA_MAX_TOKENS": "0"}, "PERSONA_MAX_TOKENS"),
        ({**BASE, "PERSONA_TEMPERATURE": "9"}, "PERSONA_TEMPERATURE"),
    ],
)
def test_bad_settings_name_the_variable(env, named):
    with pytest.raises(SettingsError, match=named):
        from_env(env)


def test_command_runs_chainlit_headless_on_the_port(tmp_path):
    launch = ui_command(base_url="http://127.0.0.1:8000/v1", model="xiaocong", port=8123,
                        app_root=tmp_path / "root")
    assert launch.argv == [sys.executable, "-m", "chainlit", "run", str(APP_PATH),
                           "--headless", "--host", "127.0.0.1", "--port", "8123"]
    assert launch.url == "http://127.0.0.1:8123"
    assert launch.cwd == tmp_path / "root" and launch.cwd.is_dir()
    assert launch.env["CHAINLIT_APP_ROOT"] == str(tmp_path / "root")
    assert launch.env["PYTHONPATH"].split(":")[0] == str(REPO_ROOT)
    # The project's UI port, as `persona ui` and `make demo` use it.
    assert ui_command(base_url="http://h/v1", model="m", app_root=tmp_path).url.endswith(":8001")


def test_command_env_carries_the_settings_and_drops_stale_ones(tmp_path, monkeypatch):
    stale = {"PERSONA_API_KEY": "old", "PERSONA_CARD": "old.yaml", "PERSONA_MAX_TOKENS": "9",
             "PYTHONPATH": "/elsewhere", "KEEP": "1"}
    for name, value in stale.items():
        monkeypatch.setenv(name, value)
    launch = ui_command(base_url="http://h/v1", model="m", app_root=tmp_path)
    assert "PERSONA_API_KEY" not in launch.env and "PERSONA_CARD" not in launch.env
    assert "PERSONA_MAX_TOKENS" not in launch.env and launch.env["KEEP"] == "1"
    assert launch.env["PYTHONPATH"].endswith(":/elsewhere")
    launch = ui_command(base_url="http://h/v1", model="m", api_key="k", card="cards/xiaocong.yaml",
                        app_root=tmp_path)
    assert launch.env["PERSONA_API_KEY"] == "k" and "PERSONA_MAX_TOKENS" not in launch.env
    assert launch.env["PERSONA_CARD"].endswith("cards/xiaocong.yaml")
    assert from_env(launch.env).model == "m"


def test_launch_module_imports_no_heavy_package():
    code = ("import sys, persona.ui.launch; heavy = {'chainlit', 'openai', 'pydantic', 'yaml', 'playwright'};"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                         text=True, check=True, env={"PYTHONPATH": str(REPO_ROOT)})
    assert out.stdout.strip() == "[]"

