"""``rsmg caption``: a tiny randomly initialised LLaVA built offline, the file backend and the leakage audit.

The VLM is a real ``LlavaForConditionalGeneration`` (tiny CLIP vision tower + tiny Llama), with a WordLevel
tokenizer trained on a few sentences and a 16-pixel CLIP image processor, saved with ``save_pretrained`` and
loaded back by ``rsmg caption`` through ``AutoProcessor`` / ``AutoModelForImageTextToText`` with
``local_files_only=True`` — the same code path as a downloaded LLaVA, in about a second. Its captions are
gibberish, which is all the manifest, resume and determinism checks need.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from _paths import SHARED_DATA, missing_shared_data

os.environ["HF_HUB_OFFLINE"] = "1"  # never reach the Hub, whatever a test does
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from rsmg.cli.caption import main
from rsmg.errors import ConfigError, DataError
from rsmg.text import captions
from rsmg.text.captions import runs

AID = SHARED_DATA / "aid_text_minitest" / "minitest"
needs_aid = pytest.mark.skipif(not AID.is_dir(), reason=f"shared data pack missing: {AID}")
PROMPT = "describe the image in one sentence ."


def _records(path: Path) -> list[dict]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _build_tiny_llava(out: Path, *, chat_template: bool = True) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    sentences = [
        PROMPT,
        "a remote sensing image of an airport with planes and a runway .",
        "USER : ASSISTANT : there are buildings roads trees sand water and a beach .",
    ]
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = ["<unk>", "<pad>", "<s>", "</s>", "<image>"]
    tok.train_from_iterator(sentences, trainers.WordLevelTrainer(special_tokens=specials))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        extra_special_tokens={"image_token": "<image>"},
    )
    template = (
        "{% for m in messages %}{{ m['role'].upper() }} : {% for c in m['content'] %}"
        "{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }} {% endif %}{% endfor %}{% endfor %}"
        "{% if add_generation_prompt %}ASSISTANT :{% endif %}"
    )
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}),
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=template if chat_template else None,
    )
    vision = CLIPVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=16,
        patch_size=8,
        projection_dim=16,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config).eval()
    # without a bias towards </s> a random model may stop at once; make EOS unlikely so captions are non-empty
    with torch.no_grad():
        model.lm_head.weight[tokenizer.eos_token_id].zero_()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def vlm_dir(tmp_path_factory):
    pytest.importorskip("transformers")
    return _build_tiny_llava(tmp_path_factory.mktemp("tiny_llava"))


@pytest.fixture
def images(tmp_path):
    """Four real AID images (two classes) copied to a fresh folder."""
    if not AID.is_dir():
        missing_shared_data(AID, "AID images")
    root = tmp_path / "image"
    for cls, stems in {"Airport": ("airport_1", "airport_2"), "Beach": ("beach_1", "beach_2")}.items():
        (root / cls).mkdir(parents=True)
        for stem in stems:
            shutil.copy(AID / "image" / cls / f"{stem}.jpg", root / cls / f"{stem}.jpg")
    return root


def _caption_args(images: Path, vlm: Path, out: Path, *extra: str) -> list[str]:
    return [
        str(images),
        "--model",
        str(vlm),
        "--out",
        str(out),
        "--prompt",
        PROMPT,
        "--max-new-tokens",
        "6",
        "--device",
        "cpu",
        "--no-progress",
        *extra,
    ]


# ------------------------------------------------------------------------------------------------------------
# Model backend
# ------------------------------------------------------------------------------------------------------------
def test_manifest_has_every_image_once_with_settings(vlm_dir, images, tmp_path, capsys):
    out = tmp_path / "caps.jsonl"
    assert main(_caption_args(images, vlm_dir, out, "--batch-size", "3")) == 0
    recs = _records(out)
    assert [r["image"] for r in recs] == [
        "Airport/airport_1.jpg",
        "Airport/airport_2.jpg",
        "Beach/beach_1.jpg",
        "Beach/beach_2.jpg",
    ]
    for r in recs:
        assert isinstance(r["caption"], str) and r["caption"]
        assert r["model"]["backend"] == "transformers"
        assert r["model"]["path"] == str(vlm_dir.resolve())
        assert r["model"]["architecture"] == "LlavaForConditionalGeneration"
        assert r["model"]["model_type"] == "llava"
        assert r["prompt"] == PROMPT
        assert r["prompt_format"] == "chat_template"
        assert r["generation"] == {
            "max_new_tokens": 6,
            "do_sample": False,
            "temperature": None,
            "top_p": None,
            "num_beams": 1,
            "seed": 0,
        }
        assert r["runtime"]["device"] == "cpu" and r["runtime"]["dtype"] == "float32"
        assert r["time"].endswith("Z") and r["seconds"] >= 0
    assert "4 new captions" in capsys.readouterr().out


def test_greedy_is_deterministic_and_batch_size_free(vlm_dir, images, tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert main(_caption_args(images, vlm_dir, a, "--batch-size", "4")) == 0
    assert main(_caption_args(images, vlm_dir, b, "--batch-size", "1")) == 0
    assert [r["caption"] for r in _records(a)] == [r["caption"] for r in _records(b)]


def test_sampling_settings_recorded(vlm_dir, images, tmp_path):
    out = tmp_path / "s.jsonl"
    args = _caption_args(images, vlm_dir, out, "--do-sample", "--temperature", "0.7", "--top-p", "0.9")
    assert main([*args, "--num-beams", "1", "--seed", "3", "--glob", "Beach/*.jpg"]) == 0
    recs = _records(out)
    assert [r["image"] for r in recs] == ["Beach/beach_1.jpg", "Beach/beach_2.jpg"]
    assert recs[0]["generation"] == {
        "max_new_tokens": 6,
        "do_sample": True,
        "temperature": 0.7,
        "top_p": 0.9,
        "num_beams": 1,
        "seed": 3,
    }


def test_resume_after_truncation_captions_only_the_rest(vlm_dir, images, tmp_path, monkeypatch):
    full = tmp_path / "full.jsonl"
    assert main(_caption_args(images, vlm_dir, full, "--batch-size", "2")) == 0
    part = tmp_path / "part.jsonl"
    lines = full.read_text(encoding="utf-8").splitlines(keepends=True)
    part.write_text("".join(lines[:2]), encoding="utf-8")  # as if killed after the first 2 images

    seen: list[int] = []
    real = captions.Captioner.caption

    def counting(self, pics):
        seen.append(len(pics))
        return real(self, pics)

    monkeypatch.setattr(captions.Captioner, "caption", counting)
    assert main(_caption_args(images, vlm_dir, part, "--batch-size", "2")) == 0
    assert sum(seen) == 2
    got, want = _records(part), _records(full)
    assert [r["image"] for r in got] == [r["image"] for r in want]
    assert [r["caption"] for r in got] == [r["caption"] for r in want]
    assert got[:2] == want[:2]  # the old records are kept untouched (times included)

    seen.clear()  # a finished manifest: nothing to do, and the model is not even loaded
    monkeypatch.setattr(captions.Captioner, "load", lambda self: pytest.fail("model loaded"))
    assert main(_caption_args(images, vlm_dir, part)) == 0
    assert seen == []


def test_interrupt_keeps_finished_batches(vlm_dir, images, tmp_path, monkeypatch, capsys):
    out = tmp_path / "caps.jsonl"
    real = captions.Captioner.caption
    calls = []

    def dying(self, pics):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, pics)

    monkeypatch.setattr(captions.Captioner, "caption", dying)
    assert main(_caption_args(images, vlm_dir, out, "--batch-size", "2")) == 130
    assert "resume" in capsys.readouterr().err
    assert [r["image"] for r in _records(out)] == ["Airport/airport_1.jpg", "Airport/airport_2.jpg"]
    assert not [p for p in out.parent.iterdir() if ".tmp" in p.name]  # no temp file left behind

    monkeypatch.setattr(captions.Captioner, "caption", real)
    assert main(_caption_args(images, vlm_dir, out, "--batch-size", "2", "--limit", "1")) == 0
    assert len(_records(out)) == 3
    assert main(_caption_args(images, vlm_dir, out, "--batch-size", "2")) == 0
    assert len(_records(out)) == 4


def test_resume_with_other_settings_is_refused(vlm_dir, images, tmp_path, capsys):
    out = tmp_path / "caps.jsonl"
    assert main(_caption_args(images, vlm_dir, out, "--glob", "Airport/*.jpg")) == 0
    capsys.readouterr()
    assert main(_caption_args(images, vlm_dir, out, "--max-new-tokens", "3")) == 1
    err = capsys.readouterr().err
    assert "other settings" in err and "generation" in err and "--overwrite" in err
    assert len(_records(out)) == 2  # untouched
    assert main(_caption_args(images, vlm_dir, out, "--max-new-tokens", "3", "--overwrite")) == 0
    recs = _records(out)
    assert len(recs) == 4 and {r["generation"]["max_new_tokens"] for r in recs} == {3}


def test_plain_prompt_without_chat_template(vlm_dir, images, tmp_path):
    plain = tmp_path / "plain_llava"
    shutil.copytree(vlm_dir, plain)
    for name in ("chat_template.jinja", "chat_template.json"):
        (plain / name).unlink(missing_ok=True)
    for name in ("processor_config.json", "tokenizer_config.json"):
        f = plain / name
        if f.exists():
            cfg = json.loads(f.read_text())
            cfg.pop("chat_template", None)
            f.write_text(json.dumps(cfg))
    cap = captions.Captioner(plain, prompt=PROMPT, device="cpu").load()
    assert cap.prompt_format == "plain"
    assert cap.prompt_text == f"<image>\n{PROMPT}"  # LLaVA needs one image token per image
    texts = cap.caption([runs._pil_rgb(images / "Beach" / "beach_1.jpg")])
    assert len(texts) == 1 and isinstance(texts[0], str)


def test_bad_image_names_the_file_or_is_recorded(vlm_dir, images, tmp_path, capsys):
    bad = images / "Beach" / "beach_9.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path / "caps.jsonl"
    assert main(_caption_args(images, vlm_dir, out, "--batch-size", "2")) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "--skip-bad" in err
    assert len(_records(out)) == 4  # batches before the bad image are saved

    assert main(_caption_args(images, vlm_dir, out, "--batch-size", "2", "--skip-bad")) == 0
    captured = capsys.readouterr()
    assert "beach_9.jpg" in captured.err and "1 images recorded as errors" in captured.out
    recs = {r["image"]: r for r in _records(out)}
    assert len(recs) == 5
    assert recs["Beach/beach_9.jpg"]["caption"] is None
    assert str(bad) in recs["Beach/beach_9.jpg"]["error"]


def test_model_dir_errors(tmp_path, images, capsys):
    empty = tmp_path / "no_weights"
    empty.mkdir()
    (empty / "config.json").write_text('{"model_type": "llava"}')
    with pytest.raises(DataError, match="no weights") as exc:
        captions.check_model_dir(empty)
    assert exc.value.file == empty and exc.value.fix and "--local-dir" in exc.value.fix

    no_cfg = tmp_path / "no_config"
    no_cfg.mkdir()
    (no_cfg / "model.safetensors").write_bytes(b"")
    with pytest.raises(DataError, match=r"no config\.json"):
        captions.check_model_dir(no_cfg)
    with pytest.raises(DataError, match="does not exist"):
        captions.check_model_dir(tmp_path / "llava-hf" / "llava-1.5-7b-hf")

    out = tmp_path / "caps.jsonl"
    assert main(_caption_args(images, empty, out)) == 1
    err = capsys.readouterr().err
    assert "no weights" in err and str(empty) in err and "fix:" in err
    assert not out.exists()


def test_bad_arguments(images, tmp_path, capsys):
    with pytest.raises(ConfigError, match="max-new-tokens"):
        captions.GenerationSettings(max_new_tokens=0)
    with pytest.raises(ConfigError, match="top-p"):
        captions.GenerationSettings.from_args(
            max_new_tokens=4, do_sample=True, temperature=1.0, top_p=1.5, num_beams=1, seed=0
        )
    assert main([str(images), "--out", str(tmp_path / "x.jsonl")]) == 2
    assert "--model / --from-files" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(images), "--model", "m", "--from-files", "t", "--out", "x"])
    with pytest.raises(DataError, match="no image found"):
        captions.find_images(images, "**/*.png")


def test_manifest_round_trip_and_corrupt_line(tmp_path):
    out = tmp_path / "m.jsonl"
    recs = {
        "B/b.jpg": {"image": "B/b.jpg", "caption": "line\u2028separator, é"},
        "A/a.jpg": {"image": "A/a.jpg"},
    }
    captions.write_manifest(out, recs)
    assert list(captions.read_manifest(out)) == ["A/a.jpg", "B/b.jpg"]
    assert captions.read_manifest(out)["B/b.jpg"] == recs["B/b.jpg"]
    out.write_text(out.read_text(encoding="utf-8") + '{"image": "C/c.jpg", "capt\n', encoding="utf-8")
    with pytest.raises(DataError, match="line 3") as exc:
        captions.read_manifest(out)
    assert exc.value.file == out and "--overwrite" in str(exc.value.fix)


# ------------------------------------------------------------------------------------------------------------
# File backend and audit (real AID minitest)
# ------------------------------------------------------------------------------------------------------------
@needs_aid
def test_file_backend_real_aid(tmp_path):
    out = tmp_path / "aid.jsonl"
    assert main([str(AID / "image"), "--from-files", str(AID / "text"), "--out", str(out)]) == 0
    recs = _records(out)
    assert len(recs) == 200 and len({r["image"] for r in recs}) == 200
    assert {r["image"].split("/")[0] for r in recs} == {"Airport", "BareLand", "BaseballField", "Beach"}
    r0 = recs[0]
    assert r0["image"] == "Airport/airport_1.jpg" and r0["source"] == "Airport/airport_1.txt"
    assert r0["caption"] == (AID / "text" / "Airport" / "airport_1.txt").read_text().strip()
    assert r0["model"] == {"backend": "files", "path": str((AID / "text").resolve())}
    # the same command again rebuilds the same manifest; a model manifest is not overwritten silently
    assert main([str(AID / "image"), "--from-files", str(AID / "text"), "--out", str(out)]) == 0
    assert [r["caption"] for r in _records(out)] == [r["caption"] for r in recs]


def test_file_backend_missing_caption(images, tmp_path, capsys):
    text = tmp_path / "text"
    for cls in ("Airport", "Beach"):
        (text / cls).mkdir(parents=True)
        for img in (images / cls).glob("*.jpg"):
            (text / cls / f"{img.stem}.txt").write_text(f"a {cls.lower()} seen from above.")
    (text / "Beach" / "beach_2.txt").unlink()
    out = tmp_path / "caps.jsonl"
    with pytest.raises(DataError) as exc:
        captions.captions_from_files(images, text, out)
    msg = str(exc.value)
    assert str(images / "Beach" / "beach_2.jpg") in msg and str(text / "Beach" / "beach_2.txt") in msg
    assert not out.exists()

    assert main([str(images), "--from-files", str(text), "--out", str(out), "--skip-bad"]) == 0
    recs = {r["image"]: r for r in _records(out)}
    assert len(recs) == 4 and recs["Beach/beach_2.jpg"]["caption"] is None
    assert "beach_2.txt" in recs["Beach/beach_2.jpg"]["error"]
    assert "beach_2" in capsys.readouterr().err


@needs_aid
def test_audit_real_aid_texts(tmp_path, capsys):
    out = tmp_path / "audit.json"
    assert main(["--audit", str(AID / "text"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| Airport |" in printed and "**total**" in printed
    result = json.loads(out.read_text())
    assert result["total"]["n"] == 200
    assert result["total"]["verdict"] >= 190
    assert set(result["classes"]) == {"Airport", "BareLand", "BaseballField", "Beach"}
    assert all(row["n"] == 50 for row in result["classes"].values())

    manifest = tmp_path / "aid.jsonl"
    assert main([str(AID / "image"), "--from-files", str(AID / "text"), "--out", str(manifest)]) == 0
    from_manifest = captions.audit_source(manifest)
    assert from_manifest["classes"] == result["classes"]


def test_audit_classes_from_folders(images, tmp_path):
    text = tmp_path / "text"
    (text / "Airport").mkdir(parents=True)
    (text / "Forest").mkdir()  # a class without captions still counts as "another class"
    (text / "Airport" / "a.txt").write_text(
        "Planes near a forest. This scene can be classified as an airport."
    )
    plain = captions.audit_source(text)
    with_folders = captions.audit_source(text, classes_from_folders=True)
    assert plain["classes"]["Airport"]["verdict"] == 1
    assert plain["classes"]["Airport"]["other_class"] == 0
    assert with_folders["classes"]["Airport"]["other_class"] == 1
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"image": "Airport/a.jpg", "caption": "an airport"}) + "\n")
    with pytest.raises(ConfigError, match="needs the image folder"):
        captions.audit_source(manifest, classes_from_folders=True)
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "x.txt").write_text("an airport")
    with pytest.raises(DataError, match="class folder"):
        captions.audit_source(flat)


def test_rsmg_command_dispatches_caption(tmp_path):
    from rsmg.cli.main import main as rsmg_main

    text = tmp_path / "text" / "Beach"
    text.mkdir(parents=True)
    (text / "b.txt").write_text("Sand and sea.")
    with pytest.raises(SystemExit) as exc:
        rsmg_main(["caption", "--audit", str(tmp_path / "text")])
    assert exc.value.code == 0
    with pytest.raises(SystemExit) as exc:
        rsmg_main(["caption", "--audit", str(tmp_path / "missing")])
    assert exc.value.code == 1


def test_import_is_light():
    import subprocess
    import sys

    code = (
        "import sys, rsmg.cli.caption, rsmg.text.captions; "
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]"
