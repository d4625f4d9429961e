#!/usr/bin/python3
"""Golden values for the TypeScript BERT (tests/bert/model_test.ts, tests/cli/forward_test.ts).

Writes a tiny random BERT checkpoint in Hugging Face names (PyTorch [out, in] layout) and, for a
3-label classifier and a 1-label regressor, the reference logits, mean loss and the gradient of that
loss for every parameter. BERT is written here in plain torch (nn.functional, no transformers package)
exactly as Hugging Face's BertForSequenceClassification computes it in eval mode (no dropout).

The reference runs in float64 on the float32-rounded parameters, so the files hold the true values of
the float32 model; the TypeScript side (float32) should match to ~1e-5.

The additive attention mask is (1 - mask) * -10000 (original BERT). Hugging Face now uses the dtype's
minimum instead; both give padded keys exactly zero weight in float32, so the results are identical.

Run with Debian's PyTorch: /usr/bin/python3 tools/make_golden.py  (writes tests/fixtures/golden/)
Files:
  config.json            the model's config (HF field names)
  model.safetensors      encoder + embeddings + pooler (no head), F32
  head_cls.safetensors   classifier.weight [3, 16], classifier.bias [3]
  head_reg.safetensors   classifier.weight [1, 16], classifier.bias [1]
  grads_cls.safetensors  d(mean cross-entropy)/d(param) for every parameter, head included
  grads_reg.safetensors  d(mean squared error)/d(param) for every parameter, head included
  golden.json            inputs (rows as `encode` writes them), labels, logits and losses
"""
import json
import math
import os
import shutil
import struct
import subprocess

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "golden")
MASK_VALUE = -10000.0

CONFIG = {
    "architectures": ["BertForSequenceClassification"],
    "model_type": "bert",
    "vocab_size": 100,
    "hidden_size": 16,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 32,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
}


def body_shapes(c):
    """Parameter names and shapes in the order of lib/bert/names.ts (without the classifier)."""
    h, f = c["hidden_size"], c["intermediate_size"]
    shapes = {
        "bert.embeddings.word_embeddings.weight": [c["vocab_size"], h],
        "bert.embeddings.position_embeddings.weight": [c["max_position_embeddings"], h],
        "bert.embeddings.token_type_embeddings.weight": [c["type_vocab_size"], h],
        "bert.embeddings.LayerNorm.weight": [h],
        "bert.embeddings.LayerNorm.bias": [h],
    }
    for i in range(c["num_hidden_layers"]):
        p = f"bert.encoder.layer.{i}"
        for name, out, inp in [
            ("attention.self.query", h, h),
            ("attention.self.key", h, h),
            ("attention.self.value", h, h),
            ("attention.output.dense", h, h),
        ]:
            shapes[f"{p}.{name}.weight"] = [out, inp]
            shapes[f"{p}.{name}.bias"] = [out]
        shapes[f"{p}.attention.output.LayerNorm.weight"] = [h]
        shapes[f"{p}.attention.output.LayerNorm.bias"] = [h]
        shapes[f"{p}.intermediate.dense.weight"] = [f, h]
        shapes[f"{p}.intermediate.dense.bias"] = [f]
        shapes[f"{p}.output.dense.weight"] = [h, f]
        shapes[f"{p}.output.dense.bias"] = [h]
        shapes[f"{p}.output.LayerNorm.weight"] = [h]
        shapes[f"{p}.output.LayerNorm.bias"] = [h]
    shapes["bert.pooler.dense.weight"] = [h, h]
    shapes["bert.pooler.dense.bias"] = [h]
    return shapes


def random_params(shapes, gen):
    """Non-trivial values: weights ~ N(0, 0.3), biases ~ N(0, 0.1), LayerNorm gamma ~ 1 + N(0, 0.2)."""
    params = {}
    for name, shape in shapes.items():
        noise = torch.randn(shape, generator=gen, dtype=torch.float32)
        if ".LayerNorm.weight" in name:
            t = 1.0 + 0.2 * noise
        elif name.endswith(".bias"):
            t = 0.1 * noise
        elif "embeddings" in name:
            t = 0.5 * noise
        else:
            t = 0.3 * noise
        params[name] = t.float()
    return params


def layer_norm(x, p, name, eps):
    return F.layer_norm(x, x.shape[-1:], p[f"{name}.weight"], p[f"{name}.bias"], eps)


def linear(x, p, name):
    return F.linear(x, p[f"{name}.weight"], p[f"{name}.bias"])


def gelu(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def bert_logits(p, c, input_ids, token_type_ids, attention_mask):
    """BertForSequenceClassification in eval mode. Shapes: ids [batch, seq] -> logits [batch, labels]."""
    batch, seq = input_ids.shape
    h, heads, eps = c["hidden_size"], c["num_attention_heads"], c["layer_norm_eps"]
    d = h // heads
    positions = torch.arange(seq)
    x = (
        p["bert.embeddings.word_embeddings.weight"][input_ids]
        + p["bert.embeddings.position_embeddings.weight"][positions][None]
        + p["bert.embeddings.token_type_embeddings.weight"][token_type_ids]
    )
    x = layer_norm(x, p, "bert.embeddings.LayerNorm", eps)  # [batch, seq, h]
    additive = (1.0 - attention_mask.to(x.dtype))[:, None, None, :] * MASK_VALUE  # [batch, 1, 1, seq]

    def split(t):  # [batch, seq, h] -> [batch, heads, seq, d]
        return t.view(batch, seq, heads, d).permute(0, 2, 1, 3)

    for i in range(c["num_hidden_layers"]):
        pre = f"bert.encoder.layer.{i}"
        q = split(linear(x, p, f"{pre}.attention.self.query"))
        k = split(linear(x, p, f"{pre}.attention.self.key"))
        v = split(linear(x, p, f"{pre}.attention.self.value"))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d) + additive
        probs = torch.softmax(scores, dim=-1)
        ctx = (probs @ v).permute(0, 2, 1, 3).reshape(batch, seq, h)
        attn = linear(ctx, p, f"{pre}.attention.output.dense")
        x = layer_norm(attn + x, p, f"{pre}.attention.output.LayerNorm", eps)
        inter = gelu(linear(x, p, f"{pre}.intermediate.dense"))
        out = linear(inter, p, f"{pre}.output.dense")
        x = layer_norm(out + x, p, f"{pre}.output.LayerNorm", eps)
    pooled = torch.tanh(linear(x[:, 0], p, "bert.pooler.dense"))
    return linear(pooled, p, "classifier")


def write_safetensors(path, tensors):
    """F32 safetensors by hand: u64 LE header length, JSON header (space-padded to 8), raw bytes."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to(torch.float32).contiguous()
        raw = struct.pack(f"<{t.numel()}f", *t.flatten().tolist())
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    js = json.dumps(header, separators=(",", ":")).encode()
    js += b" " * (-len(js) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(js)))
        f.write(js)
        for raw in blobs:
            f.write(raw)


def encoded_rows():
    """Three rows as `encode` writes them: a full pair (segment 1), a short unpadded row, a padded row."""
    cls, sep = 2, 3
    return [
        {
            "input_ids": [cls, 17, 42, 9, sep, 55, 71, sep],
            "token_type_ids": [0, 0, 0, 0, 0, 1, 1, 1],
            "attention_mask": [1, 1, 1, 1, 1, 1, 1, 1],
        },
        {  # shorter than the others: the batch pads it to 8
            "input_ids": [cls, 88, 5, 63, sep],
            "token_type_ids": [0, 0, 0, 0, 0],
            "attention_mask": [1, 1, 1, 1, 1],
        },
        {  # already padded; padded positions carry ids that must not matter
            "input_ids": [cls, 31, sep, 12, sep, 0, 0, 0],
            "token_type_ids": [0, 0, 0, 1, 1, 0, 0, 0],
            "attention_mask": [1, 1, 1, 1, 1, 0, 0, 0],
        },
    ]


def padded(rows, key):
    seq = max(len(r[key]) for r in rows)
    return torch.tensor([r[key] + [0] * (seq - len(r[key])) for r in rows], dtype=torch.long)


def main():
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(20240330)
    body = random_params(body_shapes(CONFIG), gen)
    h = CONFIG["hidden_size"]
    heads = {}
    for tag, k in [("cls", 3), ("reg", 1)]:
        heads[tag] = {
            "classifier.weight": (0.3 * torch.randn([k, h], generator=gen)).float(),
            "classifier.bias": (0.1 * torch.randn([k], generator=gen)).float(),
        }
    rows = encoded_rows()
    ids, types, mask = (padded(rows, k) for k in ["input_ids", "token_type_ids", "attention_mask"])
    labels = {"cls": [2, 0, 1], "reg": [0.7, -1.3, 2.1]}

    golden = {"rows": rows, "mask_value": MASK_VALUE}
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
        f.write("\n")
    write_safetensors(os.path.join(OUT, "model.safetensors"), body)
    for tag in ["cls", "reg"]:
        write_safetensors(os.path.join(OUT, f"head_{tag}.safetensors"), heads[tag])
        # float64 leaves holding exactly the float32 values written above
        p = {n: t.double().requires_grad_(True) for n, t in {**body, **heads[tag]}.items()}
        logits = bert_logits(p, CONFIG, ids, types, mask)
        if tag == "cls":
            loss = F.cross_entropy(logits, torch.tensor(labels[tag]))
        else:
            loss = F.mse_loss(logits.squeeze(-1), torch.tensor(labels[tag], dtype=torch.float64))
        loss.backward()
        write_safetensors(os.path.join(OUT, f"grads_{tag}.safetensors"), {n: t.grad for n, t in p.items()})
        golden[tag] = {
            "num_labels": logits.shape[1],
            "labels": labels[tag],
            "logits": logits.detach().tolist(),
            "loss": loss.item(),
        }
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")
    # The repo's `deno fmt --check` covers JSON: write it in deno's style.
    if shutil.which("deno"):
        subprocess.run(["deno", "fmt", "-q", os.path.join(OUT, "golden.json"), os.path.join(OUT, "config.json")], check=True)
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f"wrote {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()
