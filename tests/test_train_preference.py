"""The preference pass (`--preference-beta`): its pairs, its config, its files in prefer/ and what
--only-merge makes of it (train/preference.py, train/step_prefer.py). XTuner is stood in for here."""

import json
import subprocess
import sys
from collections import Counter

import pytest

from test_train_refine import finished
from test_train_steps import FakeXTuner
from persona import envs
from persona.card import load_card
from persona.commands import DEFAULT_CARD
from persona.identity.heldout import HELDOUT_QUESTIONS
from persona.identity.overlap import overlaps
from persona.identity.phrasings import ANSWERS, answers, training_questions
from persona.identity.unrelated import UNRELATED
from persona.paths import REPO_ROOT
from persona.run_folder import RunFolder, read_json
from persona.train import step_prefer
from persona.train.dataset import base_display_name, plain_pairs
from persona.train.options import TrainOptions
from persona.train.preference import preference_pairs
from persona.train.step_train import Trained, earlier
from persona.train.xtuner_config import render_config

CARD = load_card(DEFAULT_CARD)
PLAIN = {lang: plain_pairs(lang, 40, 0) for lang in ("zh", "en")}


def _pairs(**options):
    return preference_pairs(CARD, PLAIN, base_display_name(CARD.base), 0, **options)


def _identity_answers(lang: str) -> set[str]:
    return {text for kind in ANSWERS[lang] for text in answers(CARD, lang, kind)}


def test_everyday_questions_reject_the_introduction_and_identity_ones_an_everyday_answer():
    pairs = _pairs(identity_repeats=1, plain_per_lang=50)
    questions = training_questions((base_display_name(CARD.base),))
    assert len(pairs) == 2 * 50 + len(questions)
    plain_answers = {lang: {answer for _, answer in PLAIN[lang]} for lang in PLAIN}
    kinds = {item["question"]: (item["lang"], item["kind"]) for item in questions}
    counted = Counter()
    for pair in pairs:
        if pair["question"] in kinds:
            lang, kind = kinds[pair["question"]]
            assert pair["chosen"] in answers(CARD, lang, kind), pair
            assert pair["rejected"] in plain_answers[lang], pair
            counted["identity", lang] += 1
        else:
            lang = next(lang for lang in PLAIN if (pair["question"], pair["chosen"]) in PLAIN[lang])
            assert pair["rejected"] in _identity_answers(lang), pair
            counted["everyday", lang] += 1
        assert pair["system"], pair  # rendered with a system block, as training and serving do
    assert counted["everyday", "zh"] == counted["everyday", "en"] == 50
    assert counted["identity", "zh"] == counted["identity", "en"] == len(questions) // 2


def test_pairs_repeat_the_identity_questions_and_depend_only_on_the_seed():
    once, twice = _pairs(identity_repeats=1), _pairs(identity_repeats=2)
    assert len(twice) - len(once) == len(training_questions((base_display_name(CARD.base),)))
    assert _pairs(identity_repeats=1) == once
    assert preference_pairs(CARD, PLAIN, None, 1) != preference_pairs(CARD, PLAIN, None, 0)


def test_pairs_ask_nothing_the_evals_ask():
    asked = sorted({pair["question"] for pair in _pairs()})
    assert not overlaps([item["question"] for item in HELDOUT_QUESTIONS], asked)
    assert not overlaps([question for _lang, _kind, question in UNRELATED], asked)


def test_the_preference_config_trains_orpo_on_pairs_from_the_adapter():
    options = step_prefer.pass_options(TrainOptions())  # what the pass renders
    assert not options.lean_model and not step_prefer.pass_options(TrainOptions(device="cuda")).lean_model
    text = render_config("xiaocong", "/models/base", "/run/prefer/pairs.json", options,
                         start_adapter="/run/adapter", preference_beta=0.25)
    compile(text, "xtuner_config.py", "exec")
    assert "type=build_orpo," in text and "beta=0.25," in text
    assert 'start_adapter="/run/adapter",' in text
    assert "type=build_preference_dataset," in text and "preference_collate_fn" in text
    assert "type=load_chatml_tokenizer," in text
    assert "DatasetInfoHook, tokenizer" not in text  # it reads SFT samples only
    plain = render_config("xiaocong", "/models/base", "/run/data/train.json", TrainOptions())
    assert "build_orpo" not in plain and "dict(type=DatasetInfoHook, tokenizer=tokenizer)" in plain
    with pytest.raises(ValueError, match="no lean model"):
        render_config("xiaocong", "/models/base", "/d.json", TrainOptions(device="cuda"),
                      preference_beta=0.25)


def test_the_pass_trains_orpo_from_the_trained_adapter_and_only_merge_takes_its_checkpoint(
        tmp_path, monkeypatch):
    run = finished(tmp_path)
    run.work.mkdir()
    (run.work / "iter_520.pth").write_bytes(b"")
    run.write_options(TrainOptions().model_dump())
    converted = []
    monkeypatch.setattr(step_prefer, "convert", lambda run, checkpoint, method, xtuner: (
        converted.append((checkpoint.name, method))))
    options = TrainOptions(preference_beta=0.25)
    trained = Trained(run.work / "iter_520.pth", options.model_dump(), {"samples": 100})
    fake = FakeXTuner(run, stop=3, total=3)
    preferred = step_prefer.prefer(run, CARD, "/models/base", options, trained, fake)
    assert converted == [("iter_520.pth", "qlora")]  # the pass starts from that adapter
    assert fake.calls == [["train", str(run.prefer_config), "--work-dir", str(run.prefer_work)]]
    assert preferred.checkpoint == run.prefer_work / "iter_3.pth"
    config = run.prefer_config.read_text(encoding="utf-8")
    assert f'start_adapter="{run.adapter}"' in config and "beta=0.25," in config
    assert f"lr = {options.lr * step_prefer.LR_FACTOR}" in config
    assert f"batch_size = {step_prefer.PAIRS_PER_STEP}" in config
    assert "pack_to_max_length = False" in config and "max_epochs = 1" in config
    pairs = read_json(run.prefer_data)
    assert len(pairs) == 2 * step_prefer.PLAIN_PER_LANG + len(
        training_questions((base_display_name(CARD.base),))) * step_prefer.IDENTITY_REPEATS
    assert preferred.options == options.model_dump()  # the run's own options
    assert preferred.stats["samples"] == 100
    assert preferred.stats["preference"]["pairs"] == len(pairs)
    assert preferred.stats["preference"]["steps"] == 3
    # --only-merge converts the pass's checkpoint when the run's options ask for the pass, and
    # its manifest records the pass even where the stats are rebuilt (the manifest went first)
    assert earlier(run).checkpoint.name == "iter_520.pth"
    run.write_options(options.model_dump())
    run.remove(run.manifest)
    merged = earlier(run)
    assert merged.checkpoint == run.prefer_work / "iter_3.pth"
    assert merged.stats["preference"] == preferred.stats["preference"]


def test_preference_beta_is_a_weight_and_needs_lora():
    assert TrainOptions().preference_beta == 0  # no pass unless asked
    with pytest.raises(ValueError, match="between 0"):
        TrainOptions(preference_beta=-1)
    with pytest.raises(ValueError, match="method 'full' has none"):
        TrainOptions(method="full", preference_beta=0.25)


@pytest.mark.slow
@pytest.mark.skipif(not envs.is_ready("train"), reason="the training env is not built")
def test_a_real_run_trains_the_pass_and_merges_its_adapter(tmp_path):
    """Real XTuner: five supervised steps, then five ORPO steps from their adapter (one log
    interval: ORPO's own metrics are logged), then the merge."""
    run = RunFolder(tmp_path / "run")
    result = subprocess.run(
        [sys.executable, "-m", "persona.cli", "train", "--card", str(DEFAULT_CARD), "--out",
         str(run.root), "--max-steps", "5", "--preference-beta", "0.25", "--no-eval-chat"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=1200)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-5000:]
    assert "preference pass (ORPO, beta 0.25)" in out
    manifest = run.read_manifest()
    assert manifest["hyperparameters"]["preference_beta"] == 0.25
    assert manifest["dataset"]["preference"]["steps"] == 5
    assert run.last_checkpoint(run.prefer_work).name == "iter_5.pth"
    logged = [json.loads(line) for line in
              next(run.prefer_work.rglob("scalars.json")).read_text().splitlines()]
    assert all("log_odds_ratio" in step and "nll_loss" in step for step in logged)  # ORPO's
    assert run.finished() and run.has_adapter()
