#!/usr/bin/python3
"""Checkpoint-format fixtures for tests/bert/weights_test.ts and tests/bert/hub_test.ts.

One tiny random BERT (BertForSequenceClassification names, 2 labels) saved the three ways the Hugging Face
hub serves weights, so the tests can check that all three load to identical tensors and logits:

  safetensors/  config.json, model.safetensors
  sharded/      config.json, model.safetensors.index.json, model-0000{1,2}-of-00002.safetensors
  pytorch/      config.json, pytorch_model.bin   (torch.save of the state dict: zip + pickle)
  legacy/       config.json, pytorch_model.bin   (the same in the pre-1.6 format, pickles and storages in a row)
  evil.bin      torch.save of a dict whose value pickles as a call to os.system (never run by the loader)
  logits.json   input rows and this float64 reference's logits for them

The values are the same in every format, dtype included: most tensors float32, the token-type embeddings
float16, the embeddings' LayerNorm bfloat16. pytorch_model.bin also holds what real .bin files hold and
safetensors files avoid: query/key/value weights (and biases) of layer 0 as views at offsets into one
fused storage, a transposed (non-contiguous) intermediate weight in layer 1, a pretraining decoder that
shares the word embeddings' storage, the int64 position_ids buffer, and the state dict's `_metadata`.

Run once with Debian's PyTorch (apt-get install python3-torch): /usr/bin/python3 tools/make_formats.py
(writes tests/fixtures/formats/). The tests never need Python.
"""
import json
import os
import shutil
import subprocess
import sys
from collections import OrderedDict

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import body_shapes, bert_logits, encoded_rows, padded, random_params  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "formats")
# Written by evil.bin's payload if anything ever ran it; the test checks it does not appear.
MARKER = "/tmp/normtune-evil-pickle-ran"

CONFIG = {
    "architectures": ["BertForSequenceClassification"],
    "model_type": "bert",
    "vocab_size": 96,
    "hidden_size": 8,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 16,
    "hidden_act": "gelu",
    "max_position_embeddings": 16,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
}

DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}


def tensor_bytes(t):
    t = t.contiguous()
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.view(torch.int16)  # numpy has no bfloat16
    return t.numpy().tobytes()


def write_safetensors(path, tensors):
    """safetensors by hand (the package is not in Debian), keeping each tensor's dtype."""
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        raw = tensor_bytes(t)
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    js = json.dumps(header, separators=(",", ":")).encode()
    js += b" " * (-len(js) % 8)
    with open(path, "wb") as f:
        f.write(len(js).to_bytes(8, "little"))
        f.write(js)
        for raw in blobs:
            f.write(raw)


def write_config(folder):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
        f.write("\n")


class Evil:
    """Pickles as `os.system("touch MARKER")`: what a malicious pytorch_model.bin carries."""

    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


def main():
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    gen = torch.Generator().manual_seed(20240331)
    params = random_params(body_shapes(CONFIG), gen)
    h = CONFIG["hidden_size"]
    params["classifier.weight"] = (0.3 * torch.randn([2, h], generator=gen)).float()
    params["classifier.bias"] = (0.1 * torch.randn([2], generator=gen)).float()
    params["bert.embeddings.token_type_embeddings.weight"] = params["bert.embeddings.token_type_embeddings.weight"].half()
    for part in ["weight", "bias"]:
        name = f"bert.embeddings.LayerNorm.{part}"
        params[name] = params[name].bfloat16()
    position_ids = torch.arange(CONFIG["max_position_embeddings"]).unsqueeze(0)

    # safetensors: what save_pretrained writes (the position_ids buffer included, as older versions did).
    flat = dict(params)
    flat["bert.embeddings.position_ids"] = position_ids
    write_config(os.path.join(OUT, "safetensors"))
    write_safetensors(os.path.join(OUT, "safetensors", "model.safetensors"), flat)

    # Sharded: the same tensors split over two files, and the index naming each tensor's shard.
    folder = os.path.join(OUT, "sharded")
    write_config(folder)
    names = sorted(flat)
    shards = [names[: len(names) // 2], names[len(names) // 2 :]]
    weight_map, total = {}, 0
    for i, part in enumerate(shards):
        file = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        write_safetensors(os.path.join(folder, file), {n: flat[n] for n in part})
        for n in part:
            weight_map[n] = file
            total += flat[n].numel() * flat[n].element_size()
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
        f.write("\n")

    # pytorch_model.bin: an OrderedDict state dict as model.state_dict() gives it, with views and sharing.
    sd = OrderedDict()
    for n in body_shapes(CONFIG):
        sd[n] = params[n]
        if n == "bert.embeddings.token_type_embeddings.weight":
            sd["bert.embeddings.position_ids"] = position_ids
    sd["classifier.weight"] = params["classifier.weight"]
    sd["classifier.bias"] = params["classifier.bias"]
    pre = "bert.encoder.layer.0.attention.self"
    for part in ["weight", "bias"]:
        fused = torch.cat([params[f"{pre}.{qkv}.{part}"] for qkv in ["query", "key", "value"]])
        for i, qkv in enumerate(["query", "key", "value"]):
            sd[f"{pre}.{qkv}.{part}"] = fused[i * h : (i + 1) * h]  # offset views into one storage
    inter = "bert.encoder.layer.1.intermediate.dense.weight"
    sd[inter] = params[inter].t().contiguous().t()  # same values, strides (1, 16)
    assert not sd[inter].is_contiguous()
    sd["cls.predictions.decoder.weight"] = sd["bert.embeddings.word_embeddings.weight"]  # tied: one storage
    sd["cls.predictions.bias"] = torch.zeros(CONFIG["vocab_size"])
    sd._metadata = OrderedDict([("", {"version": 1}), ("bert", {"version": 1})])
    write_config(os.path.join(OUT, "pytorch"))
    torch.save(sd, os.path.join(OUT, "pytorch", "pytorch_model.bin"))
    write_config(os.path.join(OUT, "legacy"))
    torch.save(sd, os.path.join(OUT, "legacy", "pytorch_model.bin"), _use_new_zipfile_serialization=False)

    torch.save(OrderedDict([("classifier.bias", torch.zeros(2)), ("payload", Evil())]), os.path.join(OUT, "evil.bin"))

    rows = encoded_rows()
    for r in rows:  # the golden rows use ids up to 88 and segment ids 0/1: both fit this config
        assert max(r["input_ids"]) < CONFIG["vocab_size"] and len(r["input_ids"]) <= CONFIG["max_position_embeddings"]
    ids, types, mask = (padded(rows, k) for k in ["input_ids", "token_type_ids", "attention_mask"])
    p64 = {n: t.double() for n, t in params.items()}
    logits = bert_logits(p64, CONFIG, ids, types, mask)
    with open(os.path.join(OUT, "logits.json"), "w") as f:
        json.dump({"rows": rows, "logits": logits.tolist()}, f)
        f.write("\n")
    if shutil.which("deno"):
        jsons = [os.path.join(d, n) for d, _, files in os.walk(OUT) for n in files if n.endswith(".json")]
        subprocess.run(["deno", "fmt", "-q", *jsons], check=True)
    for d, _, files in sorted(os.walk(OUT)):
        for n in sorted(files):
            print(f"{os.path.relpath(os.path.join(d, n), OUT)}: {os.path.getsize(os.path.join(d, n))} bytes")


if __name__ == "__main__":
    main()
