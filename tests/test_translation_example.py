import json
import random
import sys
from pathlib import Path

import pytest
from tiny import FAST_AUTODROP_RUN, QUIET_RUN

EXAMPLE = Path(__file__).parents[1] / "examples" / "translation"
sys.path.insert(0, str(EXAMPLE))

import run_translation  # noqa: E402
from translation_data import (  # noqa: E402
    TranslationDataError,
    corpus_bleu,
    read_parallel_text,
    read_translation_jsonl,
    train_tokenizer,
)

WORDS = {
    "eins": "one",
    "zwei": "two",
    "drei": "three",
    "vier": "four",
    "haus": "house",
    "katze": "cat",
    "hund": "dog",
    "rot": "red",
    "blau": "blue",
    "gross": "big",
    "klein": "small",
    "und": "and",
}


def write_parallel(folder: Path, sizes=(("train", 160), ("valid", 24), ("test", 24)), seed=0):
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, size in sizes:
        german = [" ".join(rng.choice(list(WORDS)) for _ in range(rng.randint(2, 6))) for _ in range(size)]
        (folder / f"{split}.de").write_text("\n".join(german) + "\n")
        (folder / f"{split}.en").write_text("\n".join(" ".join(WORDS[w] for w in s.split()) for s in german) + "\n")
    return folder


def run_script(monkeypatch, output_dir, *arguments):
    run = "--do_train --do_eval --do_predict --predict_with_generate --max_steps 30 --per_device_train_batch_size 16"
    model = "--vocab_size 80 --d_model 32 --encoder_layers 1 --decoder_layers 1 --attention_heads 2 --ffn_dim 64"
    argv = [
        "run_translation.py",
        "--output_dir",
        str(output_dir),
        *run.split(),
        "--learning_rate",
        "3e-3",
        "--warmup_steps",
        "3",
        *QUIET_RUN,
        *FAST_AUTODROP_RUN,
        *model.split(),
        "--max_target_length",
        "24",
        *arguments,
    ]
    monkeypatch.setattr(sys, "argv", argv)
    return run_translation.main()


def test_from_scratch_end_to_end_then_reload_and_generate(tmp_path, monkeypatch):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    data = write_parallel(tmp_path / "data")
    summary = run_script(monkeypatch, tmp_path / "out", "--text_dir", str(data))
    assert summary["optimizer_steps"] == 30 and summary["schedule"] == "autodrop"
    results = json.loads((tmp_path / "out/results.json").read_text())
    assert results["test_bleu"] == summary["predict_bleu"]
    predictions = (tmp_path / "out/generated_predictions.txt").read_text().splitlines()
    references = (data / "test.en").read_text().splitlines()
    assert len(predictions) == len(references) == 24
    import sacrebleu  # the reported test BLEU is sacreBLEU's corpus BLEU of the written predictions

    assert summary["predict_bleu"] == pytest.approx(sacrebleu.corpus_bleu(predictions, [references]).score, abs=1e-6)
    assert (tmp_path / "out/autodrop.png").exists()

    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "out")
    model = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "out")
    encoded = tokenizer(["eins zwei haus"], return_tensors="pt")
    assert encoded["input_ids"][0, -1] == tokenizer.eos_token_id  # </s> appended
    assert tokenizer.decode(encoded["input_ids"][0], skip_special_tokens=True) == "eins zwei haus"  # detokenized
    generated = model.generate(**encoded, max_new_tokens=10)
    assert generated.shape[1] <= 11 and "▁" not in tokenizer.decode(generated[0], skip_special_tokens=True)


def test_sources_and_targets_are_truncated_at_their_own_lengths_and_keep_the_end_token():
    pairs = [{"de": "eins zwei drei vier haus katze", "en": "one two three four house cat"}] * 40
    tokenizer = train_tokenizer([p["de"] for p in pairs] + [p["en"] for p in pairs], 60)
    (full,) = run_translation.encode(tokenizer, pairs[:1], run_translation.DataTrainingArguments(text_dir="."))
    arguments = run_translation.DataTrainingArguments(text_dir=".", max_source_length=40, max_target_length=4)
    (short,) = run_translation.encode(tokenizer, pairs[:1], arguments)
    assert short["input_ids"] == full["input_ids"] and len(full["labels"]) > 4
    assert short["labels"] == [*full["labels"][:3], tokenizer.eos_token_id]


def test_language_codes_predict_without_generation_and_evaluating_a_saved_model(tmp_path, monkeypatch):
    data = write_parallel(tmp_path / "data")
    summary = run_script(
        monkeypatch,
        tmp_path / "out",
        "--text_dir",
        str(data),
        "--max_steps",
        "4",
        "--source_lang",
        "de_DE",
        "--target_lang",
        "en_XX",
    )  # mBART-style codes
    assert summary["optimizer_steps"] == 4 and "predict_bleu" in summary
    evaluate_only = [
        "run_translation.py",
        "--output_dir",
        str(tmp_path / "out"),
        "--text_dir",
        str(data),
        "--do_predict",
        "--report_to",
        "none",
    ]  # the saved pair, no generation
    monkeypatch.setattr(sys, "argv", evaluate_only)
    metrics = run_translation.main()
    assert "predict_loss" in metrics and "predict_bleu" not in metrics
    monkeypatch.setattr(sys, "argv", [*evaluate_only[:2], str(tmp_path / "empty"), *evaluate_only[3:]])
    with pytest.raises(SystemExit, match="without --do_train there is no model to evaluate"):
        run_translation.main()


def test_a_missing_split_stops_the_script_before_training(tmp_path, monkeypatch):
    line = json.dumps({"translation": {"de": "eins zwei", "en": "one two"}})
    (tmp_path / "train.jsonl").write_text((line + "\n") * 8)
    with pytest.raises(SystemExit, match="--do_eval needs a validation split"):
        run_script(monkeypatch, tmp_path / "out", "--train_file", str(tmp_path / "train.jsonl"))
    assert not (tmp_path / "out").exists()


def test_json_lines_route(tmp_path, monkeypatch):
    rng = random.Random(1)
    for split, size in (("train", 64), ("valid", 8)):
        lines = []
        for _ in range(size):
            german = " ".join(rng.choice(list(WORDS)) for _ in range(3))
            english = " ".join(WORDS[w] for w in german.split())
            lines.append(json.dumps({"translation": {"de": german, "en": english}}))
        (tmp_path / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    summary = run_script(
        monkeypatch,
        tmp_path / "out",
        "--train_file",
        str(tmp_path / "train.jsonl"),
        "--validation_file",
        str(tmp_path / "valid.jsonl"),
        "--test_file",
        str(tmp_path / "valid.jsonl"),
        "--max_steps",
        "4",
        "--lr_scheduler_type",
        "linear",
    )
    assert summary["schedule"] == "linear" and summary["drops"] == 0 and "eval_bleu" in summary


def test_bad_parallel_files(tmp_path):
    folder = write_parallel(tmp_path, sizes=(("train", 5),))
    (tmp_path / "train.en").write_text("one\ntwo\n")
    with pytest.raises(TranslationDataError, match=r"train\.de has 5 lines but .*train\.en has 2"):
        read_parallel_text(folder, "train", "de", "en")
    (tmp_path / "train.en").write_text("")
    with pytest.raises(TranslationDataError, match=r"train\.en: empty file"):
        read_parallel_text(folder, "train", "de", "en")
    with pytest.raises(TranslationDataError, match=r"valid\.de: file not found"):
        read_parallel_text(folder, "valid", "de", "en")
    (tmp_path / "x.jsonl").write_text(json.dumps({"translation": {"de": "eins", "fr": "un"}}) + "\n")
    with pytest.raises(TranslationDataError, match=r"x\.jsonl, line 1: \"translation\" has no 'en' text"):
        read_translation_jsonl(tmp_path / "x.jsonl", "de", "en")
    (tmp_path / "x.jsonl").write_text("\n")
    with pytest.raises(TranslationDataError, match="empty file"):
        read_translation_jsonl(tmp_path / "x.jsonl", "de", "en")


def test_bad_files_stop_the_script_with_the_problem(tmp_path, monkeypatch):
    folder = write_parallel(tmp_path / "data")
    (folder / "valid.en").write_text("one\n")
    with pytest.raises(SystemExit, match="must be line-aligned"):
        run_script(monkeypatch, tmp_path / "out", "--text_dir", str(folder))
    with pytest.raises(ValueError, match="give --text_dir, --train_file"):
        monkeypatch.setattr(sys, "argv", ["run_translation.py", "--output_dir", str(tmp_path)])
        run_translation.main()


def test_tokenizer_round_trip_and_bleu():
    tokenizer = train_tokenizer(["eins zwei drei", "one two three", "haus und katze"] * 20, vocab_size=40)
    ids = tokenizer("eins und drei")["input_ids"]
    assert ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == "eins und drei"
    score, signature, _ = corpus_bleu(["the cat sat on the mat"], ["the cat sat on the mat"])
    assert score == pytest.approx(100.0) and signature.startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert corpus_bleu(["a b c d"], ["w x y z"])[0] == pytest.approx(0.0)
