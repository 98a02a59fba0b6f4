"""The slowest request each environment's limits accept, timed on one thread with the real E5.

    .venv/bin/python -m benchmarks.request_budget [--repeats 2] [--corpus DIR]

For every environment in cdk.json it takes the container environment exactly
as the endpoint stack builds it (``container_environment``), so the limits are
the deployed ones, and builds the worst request those limits accept: as many
texts as the token budget allows at the full 512-token window (the most
expensive tokens: attention grows with the window), each as long in characters
as the character limits allow (the tokenizer reads a whole text before
truncating), from real prose (SciFact passages when ``--corpus`` is given,
else a fixed English paragraph). It times ``transform_fn`` end to end on one
torch thread, which is what each endpoint worker runs, and then sends the same
request plus one more short text and checks that it is refused with a 400
message before the encoder is ever called.

This machine is shared: the figures are upper bounds under whatever load it
had, and the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import torch

from model import inference
from stacks.config import environment_names, load_config
from stacks.embedding_endpoint import container_environment

ROOT = Path(__file__).resolve().parents[1]
FALLBACK_PROSE = (
    "The committee reviewed the annual report on coastal erosion, noting that sediment "
    "transport along the northern beaches had increased after the harbour wall was extended. "
)


def prose(corpus: Path | None, chars: int) -> str:
    """At least ``chars`` characters of natural text."""
    if corpus is not None:
        parts: list[str] = []
        total = 0
        with (corpus / "corpus.jsonl").open(encoding="utf-8") as lines:
            for line in lines:
                text = json.loads(line)["text"]
                parts.append(text)
                total += len(text) + 1
                if total >= chars:
                    break
        text = " ".join(parts)
    else:
        text = ""
    while len(text) < chars:
        text += FALLBACK_PROSE
    return text


def worst_request(cfg: inference.HandlerConfig, window: int, source: str) -> list[str]:
    """Full-window texts up to the token budget, each as long as the character limits allow."""
    count = min(cfg.max_texts, cfg.max_request_tokens // window)
    per_text = min(cfg.max_text_chars, cfg.max_request_chars // count)
    return [source[i * 997 : i * 997 + per_text] for i in range(count)]


class CountingModule(torch.nn.Module):
    """Wraps the encoder to count forward passes (proves "refused before model work")."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0
        self.config = inner.config

    def forward(self, *args: object, **kwargs: object) -> object:
        self.calls += 1
        return self.inner(*args, **kwargs)


def main(argv: list[str] | None = None) -> None:
    """Time each environment's worst accepted request and check the next one is refused."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.request_budget")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--corpus", type=Path, default=None, help="a BEIR dir for the prose")
    parser.add_argument("--model-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.model_dir is None:
        from tools.real_e5 import model_dir

        args.model_dir = model_dir()
    context = json.loads((ROOT / "cdk.json").read_text(encoding="utf-8"))["context"]
    base = inference.load_model(args.model_dir, inference.HandlerConfig(threads=1))
    counting = CountingModule(base.model)
    source = prose(args.corpus, 1_100_000)
    print(f"model: {args.model_dir}; 1 torch thread; cores {inference.available_cores()}")
    print(
        "| env | instance | token budget | char budget | texts x chars | tokens "
        "| worst s | refused before model | load avg |"
    )
    print("| --- | --- | ---: | ---: | --- | ---: | ---: | --- | --- |")
    for name in environment_names(context):
        config = load_config(context, name)
        env = {**container_environment(config), inference.ENV_THREADS: "1"}
        cfg = inference.HandlerConfig.from_env(env)
        model = replace(base, config=cfg, model=counting)
        texts = worst_request(cfg, model.max_tokens, source)
        body = json.dumps({"texts": texts, "content_type": "passage"})
        tokens = sum(len(r) for r in inference.tokenize(model, ["passage: " + t for t in texts]))
        seconds = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            inference.transform_fn(model, body, "application/json", "application/json")
            seconds.append(time.perf_counter() - started)
        over = json.dumps({"texts": [*texts, "one more"], "content_type": "passage"})
        before = counting.calls
        try:
            inference.transform_fn(model, over, "application/json", "application/json")
            refused = "NO: accepted"
        except inference.RequestError as exc:
            refused = "yes" if counting.calls == before else "NO: model ran"
            refused += f" ({str(exc)[:60]}...)"
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"| {name} | {config.endpoint_instance_type} | {cfg.max_request_tokens} "
            f"| {cfg.max_request_chars} | {len(texts)} x {len(texts[0])} | {tokens} "
            f"| {max(seconds):.1f} | {refused} | {load} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
