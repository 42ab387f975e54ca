"""Model and results cards: rendered from hub_cards/ through huggingface_hub's card classes, validated offline."""

import pytest

from ditlaws.errors import UserError
from ditlaws.store.cards import model_card, results_card, template_path, validate_card
from ditlaws.store.retry import describe


def record(run_id="r1", study="s", **extra):
    return {"study": study, "run_id": run_id, "family": "cross_attn", "budget": 1e15, "N": 1234567, "D": 89000,
            "C": 6.0 * 1234567 * 89000, "steps": 10, "final_loss": 0.51, "final_loss_ema": 0.52,
            "loss_last10pct": 0.515, "processes": 2, "git_commit": "abc123",
            "model_config": {"_class_name": "CrossAttnDiT", "depth": 4, "width": 256, "heads": 4}, **extra}


def test_model_card_holds_what_a_reader_needs_and_validates():
    metrics = [{"step": s, "loss": 1.0 / s, "loss_ema": 1.1 / s, "lr": 1e-4, "image_tokens": 64 * s, "flops": 1e9 * s}
               for s in range(1, 11)]
    card = model_card(record(eval={"val_loss": {"mean": 0.4, "sem": 0.002}, "fid": 12.5}), org="me",
                      run_config={"data": {"source": "user/images", "text_encoder": "openai/clip", "resolution": 256}},
                      metrics=metrics)
    meta = validate_card(card, "model", study="s")
    assert meta["library_name"] == "diffusers" and meta["pipeline_tag"] == "text-to-image"
    assert set(meta["tags"]) == {"ditlaws", "isoflop", "text-to-image", "s"} and meta["datasets"] == ["user/images"]
    assert meta["ditlaws"] == {"study": "s", "run_id": "r1", "family": "cross_attn", "budget": 1e15, "N": 1234567,
                               "D": 89000, "C": 6.0 * 1234567 * 89000}
    for text in ("# me/s-r1", "| depth | 4 |", "| width | 256 |", "| N (parameters) | 1,234,567 |",
                 "| D (image tokens) | 89,000 |", "| val_loss | 0.4 ± 0.002 |", "| fid | 12.5 |",
                 "| text encoder | openai/clip |", "CrossAttnDiT.from_pretrained(\"me/s-r1\")",
                 "accelerate launch --num_processes 2 train_dit.py --config train_config.yaml", "`abc123`",
                 "| 10 | 640 | 1e+10 | 0.1 | 0.11 | 0.0001 |", "[`me/s-results`](/datasets/me/s-results)"):
        assert text in card, text
    assert model_card(record(), org="me") == model_card(record(), org="me")  # no dates: a re-push is a no-op


def test_results_card_tables_every_study_and_is_order_independent():
    runs = [record("b", N=2), record("a", N=1), record("x", study="t")]
    card = results_card(runs, org="me", study="s")
    assert card == results_card(runs[::-1], org="me", study="s")
    meta = validate_card(card, "results", study="s")
    assert {"s", "t", "ditlaws", "isoflop"} <= set(meta["tags"])
    assert card.index("| a | cross_attn |") < card.index("| b | cross_attn |") < card.index("## t")
    assert "python fit_laws.py --hub me/s-results --revision <commit sha>" in card and "3 runs in 2 studies" in card


@pytest.mark.parametrize("text, kind, message", [
    ("no front matter", "model", "no YAML front matter"),
    ("---\ntags: [\n---\n", "model", "front matter does not parse"),
    ("---\nlibrary_name: diffusers\npipeline_tag: text-to-image\ntags: [ditlaws]\n---\n", "model", "tags missing"),
    ("---\ntags: [ditlaws, isoflop, text-to-image, s]\n---\n", "model", "library_name must be 'diffusers'"),
    ("---\ntags: [ditlaws, isoflop, scaling-laws, s]\n---\n", "results", "pretty_name is missing"),
])
def test_invalid_cards_are_named(text, kind, message):
    with pytest.raises(UserError, match=message):
        validate_card(text, kind, study="s")


def test_templates_are_found_from_the_package():
    path = template_path("model_card.md")
    assert path.parent.name == "cards" and path.parent.parent.name == "store" and path.is_file()
    with pytest.raises(UserError, match="card template nope.md not found"):
        template_path("nope.md")


def test_failure_messages_mask_the_token(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secretvalue123")
    assert describe(RuntimeError("Authorization: Bearer hf_secretvalue123 refused\nmore")) == \
        "RuntimeError: Authorization: Bearer *** refused"


def test_a_token_in_a_config_file_is_refused_without_repeating_it():
    from ditlaws.config import HubConfig
    from ditlaws.options import section_from_dict

    with pytest.raises(UserError, match="hub.token: unknown key") as err:
        section_from_dict(HubConfig, {"org": "me", "token": "hf_fromAConfigFile"}, "hub")
    assert "hf_fromAConfigFile" not in str(err.value)
