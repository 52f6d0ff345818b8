"""``workload-eval models``: model utilities (tiny random-weight models for smoke tests)."""

from __future__ import annotations

import click


@click.group(name="models")
def command() -> None:
    """Model utilities."""


@command.command(name="tiny")
@click.option(
    "--family",
    type=click.Choice(["llama", "opt"]),
    required=True,
    help="Architecture and tokenizer: llama (Llama-2 SentencePiece) or opt (GPT-2 BPE).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    required=True,
    help="Folder to write the model into (config, safetensors, tokenizer).",
)
@click.option(
    "--tokenizer-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder with llama-2/tokenizer.model and gpt2/{encoder.json,vocab.bpe} "
    "(default: $WORKLOAD_EVAL_TOKENIZER_DIR).",
)
def tiny(family: str, out_dir: str, tokenizer_dir: str | None) -> None:
    """Write a tiny seeded random-weight model that vLLM loads, with a real tokenizer."""
    from workload_eval.tiny_model import build_tiny_model

    out = build_tiny_model(family, out_dir, tokenizer_dir)  # type: ignore[arg-type]
    click.echo(f"wrote tiny {family} model to {out}")
