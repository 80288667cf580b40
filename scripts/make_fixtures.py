#!/usr/bin/env python3
"""Build tiny random Mamba / Mamba-2 checkpoints with Hugging Face transformers, plus reference
outputs, as test fixtures for statespace's model loader (test/models/fixtures.test.ts).

    python3 scripts/make_fixtures.py test/fixtures

Needs torch, transformers, safetensors and tokenizers; no network, no GPU. Everything runs on the
CPU through transformers' plain-PyTorch ("slow path") implementation, in float64: the weights are
saved in float32 (that is what the Node side loads), the model is then run in float64 from exactly
those float32 values, and the logits are stored as float32.

For each fixture <name> the directory <out>/<name>/ holds:
  config.json, generation_config.json, model.safetensors   (save_pretrained, safe_serialization)
  tokenizer.json                                           (a tiny byte-level BPE, shared by all)
  expected.safetensors   logits_<i>: (len_i, vocab) f32 logits of prompt i run alone
  expected.json          prompts (ids), greedy continuations, top-1/top-2 margins, provenance

"Greedy" is the argmax of a full forward re-run at every step (no cache): that is the mathematical
definition and does not depend on transformers' cache code. model.generate(do_sample=False) is run
too and recorded (hf_generate) with whether it agrees.

Each fixture is built in its own try block: one failing does not lose the others; the exit status
is 1 when any failed.
"""

import json
import math
import os
import shutil
import sys
import traceback

import torch

NEW_TOKENS = 12
# Prompt lengths cover: one token, shorter than the conv kernel, several SSD chunks (chunk_size 8).
PROMPT_LENGTHS = [1, 7, 19]
TOKENIZER_VOCAB = 300
CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "state space models scan a sequence with a recurrent state",
    "mamba selects what to remember and what to forget",
    "a small model for a small test, with odd sizes and random weights",
    "hello world! numbers 0123456789 and punctuation: ; , . ? -",
]
TEXT_PROMPT = "the quick brown fox"


def log(*args):
    print(*args, flush=True)


# ----------------------------------------------------------------------------------------------
# tokenizer
# ----------------------------------------------------------------------------------------------
def build_tokenizer():
    """A byte-level BPE (GPT-2 style, like the GPT-NeoX tokenizer Mamba checkpoints use)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_VOCAB,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"],
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    return tok


# ----------------------------------------------------------------------------------------------
# weights
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def perturb(model, gen):
    """Replace the structured init by random values of sensible scale, so that every parameter
    (D, dt bias, A_log, norm weights, conv bias) matters and logits are well separated."""

    def randn(shape):
        return torch.randn(shape, generator=gen, dtype=torch.float64)

    def rand(shape, lo, hi):
        return lo + (hi - lo) * torch.rand(shape, generator=gen, dtype=torch.float64)

    for name, p in model.named_parameters():
        shape = p.shape
        if name.endswith("A_log"):
            v = torch.log(rand(shape, 0.5, 8.0))
        elif name.endswith(".D"):
            v = 1.0 + 0.7 * randn(shape)
        elif name.endswith("dt_bias") or name.endswith("dt_proj.bias"):
            v = rand(shape, -4.0, 1.0)  # softplus → 0.018 … 1.31
        elif name.endswith("norm.weight") or name.endswith("norm_f.weight"):
            v = 1.0 + 0.3 * randn(shape)
        elif "conv1d.weight" in name:
            v = 0.5 * randn(shape)
        elif "conv1d.bias" in name:
            v = 0.2 * randn(shape)
        elif name.endswith("embeddings.weight"):
            v = randn(shape)
        elif p.dim() == 2:  # in_proj, x_proj, dt_proj, out_proj, lm_head
            v = randn(shape) / math.sqrt(shape[1])
        elif name.endswith(".bias"):
            v = 0.1 * randn(shape)
        else:
            raise RuntimeError(f"perturb: unexpected parameter {name} {tuple(shape)}")
        p.copy_(v.to(p.dtype))


# ----------------------------------------------------------------------------------------------
# Mamba-2 gated norm: statespace (like mamba_ssm's RMSNormGated, norm_before_gate=False) normalises
# within groups of intermediate_size / n_groups. Some transformers versions normalise over the whole
# intermediate_size instead. Probe which one this version does; if it is the full norm, patch the
# module to the grouped one (what Mamba-2 checkpoints are trained with) and say so in the metadata.
# ----------------------------------------------------------------------------------------------
def grouped_gated_norm(x, gate, weight, eps, group_size):
    dtype = x.dtype
    h = x.to(torch.float64) * torch.nn.functional.silu(gate.to(torch.float64))
    shp = h.shape
    hg = h.reshape(*shp[:-1], shp[-1] // group_size, group_size)
    hg = hg * torch.rsqrt(hg.pow(2).mean(-1, keepdim=True) + eps)
    return (weight.to(torch.float64) * hg.reshape(shp)).to(dtype)


@torch.no_grad()
def fix_mamba2_norm(model, config, notes):
    inter = config.num_heads * config.head_dim
    group = inter // config.n_groups
    status = "grouped"
    for layer in model.backbone.layers:
        norm = layer.mixer.norm
        eps = getattr(norm, "variance_epsilon", getattr(norm, "eps", config.layer_norm_epsilon))
        x = torch.randn(2, 3, inter, dtype=torch.float64)
        g = torch.randn(2, 3, inter, dtype=torch.float64)
        got = norm(x, g).to(torch.float64)
        want = grouped_gated_norm(x, g, norm.weight, eps, group)
        if (got - want).abs().max().item() > 1e-5 * max(1.0, want.abs().max().item()):
            status = "patched"

            def forward(hidden_states, gate=None, _n=norm, _eps=eps):
                return grouped_gated_norm(hidden_states, gate, _n.weight, _eps, group)

            norm.forward = forward
            check = norm(x, g).to(torch.float64)
            assert (check - want).abs().max().item() < 1e-9, "gated norm patch did not take"
    if status == "patched":
        notes.append(
            "this transformers version normalises Mamba2 gated RMSNorm over the whole intermediate "
            f"size; patched to groups of {group} (mamba_ssm semantics) before computing references"
        )
    return status


def mamba2_slow_path_problems(model, config):
    """Known defects of older transformers Mamba-2 slow paths, found in the source: B/C tiled
    over heads with .repeat (head h reads group h % G instead of h // (H/G)) and dt not clamped
    to time_step_limit. Returns a reason string, or None."""
    import inspect
    import re

    try:
        src = inspect.getsource(type(model.backbone.layers[0].mixer).torch_forward)
    except (OSError, TypeError, AttributeError):
        return None
    problems = []
    heads_per_group = config.num_heads // config.n_groups
    if heads_per_group > 1 and config.n_groups > 1 and re.search(r"B\.repeat\(\s*1\s*,\s*1\s*,", src):
        problems.append("slow path tiles B/C groups over heads with .repeat (group order differs from mamba_ssm)")
    lo, hi = config.time_step_limit
    if (lo > 0 or hi != float("inf")) and "time_step_limit" not in src:
        problems.append("slow path does not clamp dt to time_step_limit")
    return "; ".join(problems) or None


# ----------------------------------------------------------------------------------------------
# references
# ----------------------------------------------------------------------------------------------
def logits_of(model, ids):
    out = model(input_ids=torch.tensor([ids], dtype=torch.long), use_cache=False)
    return out.logits[0].to(torch.float64)


@torch.no_grad()
def greedy_full_rerun(model, prompt, n):
    """argmax of a full forward re-run at every step; returns tokens and top1-top2 margins."""
    seq = list(prompt)
    toks, margins = [], []
    for _ in range(n):
        last = logits_of(model, seq)[-1]
        top2 = torch.topk(last, 2)
        toks.append(int(top2.indices[0]))
        margins.append(float(top2.values[0] - top2.values[1]))
        seq.append(toks[-1])
    return toks, margins


@torch.no_grad()
def hf_generate(model, prompt, n):
    from transformers import GenerationConfig

    ids = torch.tensor([prompt], dtype=torch.long)
    # No eos: exactly n tokens, with no logits processor that could change the argmax.
    cfg = GenerationConfig(max_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=0,
                           bos_token_id=0, use_cache=True)
    out = model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=cfg)
    return [int(t) for t in out[0, len(prompt):]]


def make_prompts(vocab, gen):
    return [torch.randint(0, vocab, (n,), generator=gen).tolist() for n in PROMPT_LENGTHS]


@torch.no_grad()
def build_fixture(out_dir, name, model_cls, config, tokenizer, seed, notes_extra=None):
    from safetensors.torch import save_file

    import transformers

    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    notes = list(notes_extra or [])

    model = model_cls(config).to(torch.float32).eval()
    perturb(model, gen)

    d = os.path.join(out_dir, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    try:
        model.save_pretrained(d, safe_serialization=True)
    except TypeError:  # versions where safetensors is the only format take no such argument
        model.save_pretrained(d)
    # One file, no leftovers from other formats.
    assert os.path.isfile(os.path.join(d, "model.safetensors")), "save_pretrained wrote no model.safetensors"

    # Re-load what was saved (float32 on disk) and run it in float64: the reference is then exactly
    # the function of the stored weights.
    try:
        ref = model_cls.from_pretrained(d, dtype=torch.float64).eval()
    except TypeError:  # before `dtype` replaced `torch_dtype`
        ref = model_cls.from_pretrained(d, torch_dtype=torch.float64).eval()
    if next(ref.parameters()).dtype != torch.float64:
        ref = ref.to(torch.float64)
    norm_status = None
    invalid = None
    if config.model_type == "mamba2":
        norm_status = fix_mamba2_norm(ref, config, notes)
        invalid = mamba2_slow_path_problems(ref, config)
        if invalid:
            log(f"  {name}: WARNING: {invalid}")

    prompts = make_prompts(config.vocab_size, gen)
    tensors, entries = {}, []
    for i, p in enumerate(prompts):
        logits = logits_of(ref, p)
        tensors[f"logits_{i}"] = logits.to(torch.float32).contiguous()
        greedy, margins = greedy_full_rerun(ref, p, NEW_TOKENS)
        entry = {"ids": p, "logits": f"logits_{i}", "greedy": greedy, "margins": margins}
        try:
            hg = hf_generate(ref, p, NEW_TOKENS)
            entry["hf_generate"] = hg
            entry["hf_generate_agrees"] = hg == greedy
            if hg != greedy:
                notes.append(f"prompt {i}: transformers generate() (cached decode) differs from full re-runs")
        except Exception as e:  # generate() API drift must not lose the fixture
            entry["hf_generate_error"] = f"{type(e).__name__}: {e}"
        entries.append(entry)

    # A batched forward of two equal-length prompts, to check batch handling on the Node side.
    b = torch.stack([torch.tensor(prompts[2]), torch.tensor(prompts[2][::-1])])
    blog = ref(input_ids=b, use_cache=False).logits.to(torch.float32).contiguous()
    tensors["batch_logits"] = blog
    batch = {"ids": b.tolist(), "logits": "batch_logits"}

    text = None
    if tokenizer is not None and tokenizer.get_vocab_size() <= config.vocab_size:
        tokenizer.save(os.path.join(d, "tokenizer.json"))
        ids = tokenizer.encode(TEXT_PROMPT).ids
        greedy, margins = greedy_full_rerun(ref, ids, NEW_TOKENS)
        text = {
            "prompt": TEXT_PROMPT,
            "ids": ids,
            "greedy": greedy,
            "margins": margins,
            # special tokens kept, as statespace's decode does by default
            "completion": tokenizer.decode(greedy, skip_special_tokens=False),
        }

    save_file(tensors, os.path.join(d, "expected.safetensors"))
    meta = {
        "name": name,
        "architecture": type(ref).__name__,
        "reference_dtype": "float64 (weights stored float32; logits stored float32)",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "seed": seed,
        "new_tokens": NEW_TOKENS,
        "prompts": entries,
        "batch": batch,
        "text": text,
        "mamba2_gated_norm": norm_status,
        # Set when this transformers version's slow path is known not to compute Mamba-2 as
        # mamba_ssm does for this config; the Node tests then skip the fixture, saying why.
        "invalid_reason": invalid,
        "notes": notes,
    }
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(meta, f, indent=1)
    size = sum(os.path.getsize(os.path.join(d, x)) for x in os.listdir(d))
    min_margin = min(min(e["margins"]) for e in entries)
    log(f"  {name}: {type(ref).__name__}, {sum(p.numel() for p in ref.parameters())} params, "
        f"{size / 1024:.0f} KiB, min greedy margin {min_margin:.3g}, notes: {notes or 'none'}")


# ----------------------------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------------------------
def fixture_specs():
    """(name, builder) pairs; builders import lazily so a missing class fails only its fixture.

    Mamba-2 configs set time_step_min=1e-7: it only seeds the dt-bias init (overwritten here), but
    some transformers versions also clamp dt from below by it in the slow path, which neither
    mamba_ssm nor statespace does; at 1e-7 that clamp cannot change the results.
    """

    def mamba():
        from transformers import MambaConfig, MambaForCausalLM

        cfg = MambaConfig(
            vocab_size=300, hidden_size=40, state_size=12, num_hidden_layers=3, expand=2,
            conv_kernel=4, time_step_rank=5, use_bias=False, use_conv_bias=True,
            layer_norm_epsilon=1e-5, residual_in_fp32=True, tie_word_embeddings=True,
            use_mambapy=False, pad_token_id=0, bos_token_id=0, eos_token_id=0,
        )
        return MambaForCausalLM, cfg, 11

    def mamba_bias():
        # projection biases on, odd kernel width, untied head, dstate 7
        from transformers import MambaConfig, MambaForCausalLM

        cfg = MambaConfig(
            vocab_size=263, hidden_size=36, state_size=7, num_hidden_layers=2, expand=2,
            conv_kernel=3, time_step_rank="auto", use_bias=True, use_conv_bias=True,
            layer_norm_epsilon=1e-5, residual_in_fp32=True, tie_word_embeddings=False,
            use_mambapy=False, pad_token_id=0, bos_token_id=0, eos_token_id=0,
        )
        return MambaForCausalLM, cfg, 12

    def mamba2():
        from transformers import Mamba2Config, Mamba2ForCausalLM

        cfg = Mamba2Config(
            vocab_size=301, hidden_size=48, expand=2, num_heads=12, head_dim=8, n_groups=2,
            state_size=16, num_hidden_layers=3, conv_kernel=4, chunk_size=8, use_bias=False,
            use_conv_bias=True, layer_norm_epsilon=1e-5, residual_in_fp32=True, rms_norm=True,
            time_step_limit=(0.0, float("inf")), tie_word_embeddings=False, time_step_min=1e-7,
            pad_token_id=0, bos_token_id=0, eos_token_id=0,
        )
        return Mamba2ForCausalLM, cfg, 21

    def mamba2_limit():
        # dt clamped by time_step_limit on both sides, tied head, 4 groups, kernel 3
        from transformers import Mamba2Config, Mamba2ForCausalLM

        cfg = Mamba2Config(
            vocab_size=300, hidden_size=40, expand=2, num_heads=8, head_dim=10, n_groups=4,
            state_size=16, num_hidden_layers=2, conv_kernel=3, chunk_size=8, use_bias=False,
            use_conv_bias=True, layer_norm_epsilon=1e-5, residual_in_fp32=True, rms_norm=True,
            time_step_limit=(0.05, 0.6), tie_word_embeddings=True, time_step_min=1e-7,
            pad_token_id=0, bos_token_id=0, eos_token_id=0,
        )
        return Mamba2ForCausalLM, cfg, 22

    def falcon_mamba():
        # falcon-mamba: RMSNorm without weights on B, C and dt inside the mixer (mixer_rms_eps)
        from transformers import FalconMambaConfig, FalconMambaForCausalLM

        cfg = FalconMambaConfig(
            vocab_size=300, hidden_size=40, state_size=12, num_hidden_layers=2, expand=2,
            conv_kernel=4, time_step_rank=5, use_bias=False, use_conv_bias=True,
            layer_norm_epsilon=1e-5, mixer_rms_eps=1e-6, residual_in_fp32=True,
            tie_word_embeddings=True, use_mambapy=False, pad_token_id=0, bos_token_id=0,
            eos_token_id=0,
        )
        return FalconMambaForCausalLM, cfg, 31

    return [
        ("mamba-tiny", mamba),
        ("mamba-tiny-bias", mamba_bias),
        ("mamba2-tiny", mamba2),
        ("mamba2-tiny-limit", mamba2_limit),
        ("falcon-mamba-tiny", falcon_mamba),
    ]


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))

    import transformers

    log(f"transformers {transformers.__version__}, torch {torch.__version__}; writing to {out_dir}")
    try:
        tokenizer = build_tokenizer()
        log(f"  tokenizer: byte-level BPE, {tokenizer.get_vocab_size()} tokens")
    except Exception:
        traceback.print_exc()
        tokenizer = None
        log("  tokenizer: FAILED (fixtures are written without tokenizer.json)")

    failed = []
    for name, spec in fixture_specs():
        try:
            cls, cfg, seed = spec()
            build_fixture(out_dir, name, cls, cfg, tokenizer, seed)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            shutil.rmtree(os.path.join(out_dir, name), ignore_errors=True)
            log(f"  {name}: FAILED (see traceback above)")

    total = 0
    for root, _, files in os.walk(out_dir):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    log(f"total {total / 1024:.0f} KiB in {out_dir}; failed: {failed or 'none'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
