"""Parallel data, a joint subword tokenizer and BLEU for the translation example — no Hub needed.

Two offline layouts: Hugging Face JSON lines (``{"translation": {"de": ..., "en": ...}}`` per line) and
line-aligned plain text (``DIR/train.de`` + ``DIR/train.en``, one sentence per line, as WMT and Multi30k
ship them). Errors name the file, the line and the problem.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path


class TranslationDataError(ValueError):
    """Parallel data that is missing, empty, misaligned or lacks a language."""


def _read_utf8(path: Path) -> str:
    """The text of a UTF-8 file; a file in another encoding is refused with its name and what to do."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        guess = "UTF-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "Latin-1 or another 8-bit code page"
        raise TranslationDataError(
            f"{path}: not UTF-8 text (byte {error.start}: {error.reason}); it looks like {guess}. "
            "The files must be UTF-8: convert it, e.g. with iconv."
        ) from None


def read_parallel_text(directory: str | Path, split: str, source_lang: str, target_lang: str) -> list[dict]:
    """``DIR/{split}.{source_lang}`` and ``DIR/{split}.{target_lang}`` as ``[{"de": ..., "en": ...}]``."""
    paths = [Path(directory) / f"{split}.{lang}" for lang in (source_lang, target_lang)]
    lines = []
    for path in paths:
        if not path.is_file():
            raise TranslationDataError(f"{path}: file not found.")
        text = _read_utf8(path).split("\n")
        if text and text[-1] == "":
            text.pop()  # the final newline
        if not text:
            raise TranslationDataError(f"{path}: empty file.")
        lines.append(text)
    if len(lines[0]) != len(lines[1]):
        raise TranslationDataError(
            f"{paths[0]} has {len(lines[0])} lines but {paths[1]} has {len(lines[1])}: the files must be line-aligned."
        )
    for number, (source, target) in enumerate(zip(*lines, strict=True), start=1):
        if not source.strip() or not target.strip():
            raise TranslationDataError(f"{paths[0]} / {paths[1]}, line {number}: empty sentence.")
    return [{source_lang: s.strip(), target_lang: t.strip()} for s, t in zip(*lines, strict=True)]


def read_translation_jsonl(path: str | Path, source_lang: str, target_lang: str) -> list[dict]:
    """Hugging Face's JSON lines layout: one ``{"translation": {lang: text, ...}}`` object per line."""
    path = Path(path)
    if not path.is_file():
        raise TranslationDataError(f"{path}: file not found.")
    pairs = []
    for number, line in enumerate(_read_utf8(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise TranslationDataError(f"{path}, line {number}: not JSON ({error.msg}).") from None
        pair = record.get("translation") if isinstance(record, dict) else None
        if not isinstance(pair, dict):
            raise TranslationDataError(f'{path}, line {number}: no "translation" object.')
        for lang in (source_lang, target_lang):
            if not isinstance(pair.get(lang), str) or not pair[lang].strip():
                raise TranslationDataError(
                    f'{path}, line {number}: "translation" has no {lang!r} text (keys: {sorted(pair)}).'
                )
        pairs.append({source_lang: pair[source_lang].strip(), target_lang: pair[target_lang].strip()})
    if not pairs:
        raise TranslationDataError(f"{path}: empty file.")
    return pairs


#: Special tokens of the from-scratch tokenizer (Marian's convention: pad also starts decoding).
SPECIAL_TOKENS = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}


def train_tokenizer(texts: Iterable[str], vocab_size: int):
    """A joint (source + target) Unigram subword tokenizer, SentencePiece-style, that appends ``</s>``.

    Returns a ``PreTrainedTokenizerFast``; ``save_pretrained`` next to the model lets
    ``AutoTokenizer.from_pretrained`` reload it, and ``decode`` gives detokenized text for BLEU.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    specials = list(SPECIAL_TOKENS.values())
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>")
    tokenizer.train_from_iterator(texts, trainer=trainer)
    eos = tokenizer.token_to_id("</s>")
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", eos)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **SPECIAL_TOKENS)


def corpus_bleu(predictions: list[str], references: list[str]) -> tuple[float, str, str]:
    """Corpus BLEU (sacreBLEU, 13a tokenization) on detokenized text: ``(score, signature, source)``.

    Through ``evaluate.load("sacrebleu")`` when it loads, otherwise sacreBLEU directly: the same number.
    """
    import sacrebleu

    bleu = sacrebleu.metrics.BLEU()
    direct = bleu.corpus_score(predictions, [references]).score
    signature = str(bleu.get_signature())
    try:
        import evaluate

        metric = evaluate.load("sacrebleu")
        score = metric.compute(predictions=predictions, references=[[r] for r in references])["score"]
        return float(score), signature, "evaluate"
    except Exception:  # offline, or evaluate not installed
        return float(direct), signature, "sacrebleu"
