"""One error base: every error a user can act on derives from PersonaError, and the CLI prints
its message (and hint) without a traceback and exits with its code. Bad input that other tests
already drive through the CLI (a malformed card, an unknown base, a bad dataset, bad adapter
cards, a public chat without login, --tensor-parallel on CPU) is not repeated here."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import socket

import pytest

import persona
from persona import commands
from persona.cli import main
from persona.errors import PersonaError

# Modules the walk cannot import without a heavy stack, each with the reason; named, so a module
# is never left out silently (and a stale name fails below).
HEAVY = {
    "persona.train.cpu_autocast": "subclasses mmengine's OptimWrapper (the training env's) at import",
    "persona.train.cpu_dropout": "subclasses torch's Module at import",
    "persona.train.cpu_patches": "patches torch at import",
    "persona.train.lean_model": "imports torch",
    "persona.train.warmup": "subclasses mmengine's LinearLR (the training env's) at import",
    "persona.ui.app": "the Chainlit app: imports chainlit and reads its settings at import",
}

# Exceptions that never reach the user as an error, each with the reason.
INTERNAL = {
    "persona.ui.llm.StreamDropped": "the chat catches it and shows describe_error's text in the "
                                    "conversation; it never leaves the UI process",
}


def _module_names() -> list[str]:
    names = ["persona"]
    for info in pkgutil.walk_packages(persona.__path__, "persona.",
                                      onerror=lambda name: names.append(name)):
        names.append(info.name)
    return sorted(set(names))


def _walked() -> dict[str, type]:
    """Every exception class, and every class named *Error, defined in the importable modules."""
    found = {}
    for name in _module_names():
        if name in HEAVY:
            continue
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if (inspect.isclass(value) and value.__module__ == name
                    and (issubclass(value, BaseException) or attr.endswith("Error"))):
                found[f"{name}.{attr}"] = value
    return found


WALKED = _walked()
USER_ERRORS = sorted((name, cls) for name, cls in WALKED.items()
                     if name not in INTERNAL and issubclass(cls, PersonaError))


def test_the_walk_covers_every_component_and_names_what_it_skips():
    names = _module_names()
    for module in ("persona.card", "persona.train.dataset_file", "persona.serve.adapters",
                   "persona.ui.settings", "persona.evals.baseline"):
        assert module in names
    assert set(HEAVY) <= set(names), "a module named in HEAVY no longer exists"
    assert set(INTERNAL) <= set(WALKED), "an exception named in INTERNAL no longer exists"


def test_every_error_derives_from_persona_error():
    without = sorted(name for name, cls in WALKED.items()
                     if name not in INTERNAL and not issubclass(cls, PersonaError))
    assert without == [], f"derive these from persona.errors.PersonaError (or list them in INTERNAL with the reason): {without}"


@pytest.mark.parametrize("name, base", [
    ("persona.card.CardError", ValueError),
    ("persona.base_models.BaseModelError", ValueError),
    ("persona.train.dataset_file.DatasetError", ValueError),
    ("persona.serve.adapters.AdapterError", ValueError),
    ("persona.ui.settings.SettingsError", ValueError),
    ("persona.evals.baseline.BaselineError", ValueError),
    ("persona.services.ServiceError", RuntimeError),
    ("persona.envs.EnvError", RuntimeError),
    ("persona.ui.login.LoginRequired", RuntimeError),
    ("persona.services.KeyRequired", RuntimeError),
])
def test_errors_keep_the_builtin_base_their_callers_catch(name, base):
    assert issubclass(WALKED[name], base)


@pytest.mark.parametrize("name, cls", USER_ERRORS, ids=[name for name, _ in USER_ERRORS])
def test_cli_prints_each_error_and_exits_with_its_code(name, cls, monkeypatch, capsys):
    def refuse(card):
        raise cls(f"what went wrong ({cls.__name__})")

    monkeypatch.setattr(commands, "load_card", refuse)
    assert main(["data"]) == cls.exit_code == 2
    captured = capsys.readouterr()
    assert captured.err == f"persona: error: what went wrong ({cls.__name__})\n"
    assert captured.out == ""


def test_cli_prints_the_hint_on_its_own_line_and_honours_the_exit_code(monkeypatch, capsys):
    class Refused(PersonaError):
        exit_code = 3

    def refuse(card):
        raise Refused("what went wrong", hint="what to do")

    monkeypatch.setattr(commands, "load_card", refuse)
    assert main(["data"]) == 3
    assert capsys.readouterr().err == "persona: error: what went wrong\nwhat to do\n"


def test_ctrl_c_stops_with_130_and_a_bug_keeps_its_traceback(monkeypatch, capsys):
    def interrupt(card):
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "load_card", interrupt)
    assert main(["data"]) == 130
    assert capsys.readouterr().err == "persona: stopped\n"

    def bug(card):
        raise ValueError("a bug, not bad input")

    monkeypatch.setattr(commands, "load_card", bug)
    with pytest.raises(ValueError, match="a bug"):
        main(["data"])


def _card(tmp_path, text):
    path = tmp_path / "card.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


GOOD = "id: abc\nname: {zh: 甲, en: A}\ncreator: {zh: 乙, en: B}\n"


def _missing_card(tmp_path, monkeypatch, request):
    return ["data", "--card", str(tmp_path / "nope.yaml")], "CardError", "nope.yaml: no such card file"


def _card_not_yaml(tmp_path, monkeypatch, request):
    return ["train", "--card", _card(tmp_path, "id: [abc\n")], "CardError", "not valid YAML"


def _card_not_a_mapping(tmp_path, monkeypatch, request):
    return (["serve", "--card", _card(tmp_path, "- abc\n")], "CardError",
            "expected a YAML mapping with id, name, creator and base")


def _base_folder_without_config(tmp_path, monkeypatch, request):
    (tmp_path / "model").mkdir()
    card = _card(tmp_path, GOOD + f"base: '{tmp_path / 'model'}'\n")
    return ["data", "--card", card], "BaseModelError", "the folder has no config.json"


def _bad_device(tmp_path, monkeypatch, request):
    monkeypatch.setenv("PERSONA_DEVICE", "gpu")
    return (["serve", "--tensor-parallel", "2"], "EnvError",
            "PERSONA_DEVICE='gpu': use cpu, cuda or auto")


def _chat_port_in_use(tmp_path, monkeypatch, request):
    taken = socket.socket()
    request.addfinalizer(taken.close)
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    return (["ui", "--card", _card(tmp_path, GOOD), "--port", str(port)], "ServiceError",
            f"port {port} on 127.0.0.1 is in use; choose another with --ui-port")


@pytest.mark.parametrize("case", [_missing_card, _card_not_yaml, _card_not_a_mapping,
                                  _base_folder_without_config, _bad_device, _chat_port_in_use],
                         ids=lambda case: case.__name__.strip("_"))
def test_bad_input_is_reported_by_the_cli_without_a_traceback(case, tmp_path, monkeypatch,
                                                              request, capsys):
    monkeypatch.setenv("PERSONA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv, kind, message = case(tmp_path, monkeypatch, request)
    code = main(argv)
    err = capsys.readouterr().err
    cls = next(cls for name, cls in USER_ERRORS if name.endswith("." + kind))
    assert code == cls.exit_code == 2
    assert err.startswith("persona: error: ") and message in err
    assert "Traceback" not in err
    assert not (tmp_path / "home").exists()
