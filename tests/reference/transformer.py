#!/usr/bin/python3
"""milua's transformer written again in PyTorch: the oracle for tests/fixtures/ and the
speed anchor of bench/bench.lua. Never run by `make check` (the tests need NumPy only).

Needs /usr/bin/python3 with torch and numpy (Debian: python3-torch python3-numpy).

  transformer.py fixtures [DIR]          write every fixture of FIXTURES below into DIR
                                         (default: tests/fixtures beside this folder)
  transformer.py check FILE...           recompute each fixture's logits and loss from its own
                                         weights and tokens; exit 1 on a mismatch
  transformer.py bench CONFIG.json [--steps N] [--threads T]
                                         time N AdamW training steps, print one JSON line

The model is the one of man/milua-nn.3: TransformerLens parameter and hook names, LayerNorm
before each sublayer ("pre", with a final LayerNorm) or after each residual add ("post", as
torch.nn.TransformerEncoderLayer(norm_first=False), no final LayerNorm), learned, sinusoidal
or no positions, and a readout: the unembedding ([B, T, d_vocab_out]), "flatten" (every
position's final state into one linear layer, [B, d_out]) or "cls_pooler" (BERT's pooler on
position 1, tanh(h W_pool + b_pool) W + b, [B, d_out]). The post-LN block is checked against
torch.nn.TransformerEncoderLayer each time a post-LN fixture is written.
"""
import json, math, os, struct, sys, time
import numpy as np
import torch
import torch.nn.functional as F

# what milua's config would resolve for keys a fixture leaves out
DEFAULTS = {"n_heads": 1, "act_fn": "gelu", "normalization": "LN", "ln_position": "pre", "ln_eps": 1e-5,
            "causal": True, "positional": "learned", "readout": "unembed"}


def config(c):
    c = dict(DEFAULTS, **c)
    c.setdefault("d_head", c["d_model"] // c["n_heads"])
    c.setdefault("d_mlp", 4 * c["d_model"])
    c.setdefault("d_vocab_out", c["d_vocab"])
    return c


def param_shapes(c):
    """(name, shape, init) in milua's parameter order; init: "w" normal, "one", "zero" """
    D, H, E, M = c["d_model"], c["n_heads"], c["d_head"], c["d_mlp"]
    ln = c["normalization"] == "LN"
    out = [("embed.W_E", (c["d_vocab"], D), "w")]
    if c["positional"] == "learned":
        out.append(("pos_embed.W_pos", (c["n_ctx"], D), "w"))
    for l in range(c["n_layers"]):
        b = "blocks.%d." % l
        if ln:
            out += [(b + "ln1.w", (D,), "one"), (b + "ln1.b", (D,), "zero")]
        for m in "QKV":
            out += [(b + "attn.W_" + m, (H, D, E), "w"), (b + "attn.b_" + m, (H, E), "zero")]
        out += [(b + "attn.W_O", (H, E, D), "w"), (b + "attn.b_O", (D,), "zero")]
        if M > 0:
            if ln:
                out += [(b + "ln2.w", (D,), "one"), (b + "ln2.b", (D,), "zero")]
            out += [(b + "mlp.W_in", (D, M), "w"), (b + "mlp.b_in", (M,), "zero"),
                    (b + "mlp.W_out", (M, D), "w"), (b + "mlp.b_out", (D,), "zero")]
    if ln and c["ln_position"] == "pre":
        out += [("ln_final.w", (D,), "one"), ("ln_final.b", (D,), "zero")]
    r = c["readout"]
    if r == "unembed":
        out += [("unembed.W_U", (D, c["d_vocab_out"]), "w"), ("unembed.b_U", (c["d_vocab_out"],), "zero")]
    elif r == "flatten":
        out += [("readout.W", (c["n_ctx"] * D, c["d_out"]), "w"), ("readout.b", (c["d_out"],), "zero")]
    elif r == "cls_pooler":
        out += [("pooler.W", (D, D), "w"), ("pooler.b", (D,), "zero"),
                ("readout.W", (D, c["d_out"]), "w"), ("readout.b", (c["d_out"],), "zero")]
    else:
        raise ValueError("unknown readout " + r)
    return out


def sinusoidal(T, D):
    # row t: sin(t / 10000^(i/D)) at even i, cos of the same angle at i + 1
    t = torch.arange(T, dtype=torch.float64)[:, None]
    i = torch.arange(0, D, 2, dtype=torch.float64)[None, :]
    a = t / torch.pow(10000.0, i / D)
    p = torch.zeros(T, D, dtype=torch.float64)
    p[:, 0::2], p[:, 1::2] = torch.sin(a), torch.cos(a)
    return p.float()


class Transformer(torch.nn.Module):
    def __init__(self, c, seed=0):
        super().__init__()
        self.c = config(c)
        g = torch.Generator().manual_seed(seed)
        self.names, params = [], {}
        for name, shape, init in param_shapes(self.c):
            t = torch.ones(shape) if init == "one" else torch.zeros(shape) if init == "zero" else \
                torch.randn(shape, generator=g) * 0.02
            self.names.append(name)
            params[name.replace(".", "__")] = torch.nn.Parameter(t)   # a ParameterDict key has no dots
        self.P = torch.nn.ParameterDict(params)

    def w(self, name):
        return self.P[name.replace(".", "__")]

    def layer_norm(self, x, prefix, hook):
        x = x - x.mean(-1, keepdim=True)
        scale = hook(prefix + ".hook_scale", (x.pow(2).mean(-1, keepdim=True) + self.c["ln_eps"]).sqrt())
        x = hook(prefix + ".hook_normalized", x / scale)
        return x * self.w(prefix + ".w") + self.w(prefix + ".b")

    def attention(self, x, b, hook):
        c, w = self.c, self.w
        q, k, v = (hook(b + "attn.hook_" + m.lower(),
                        torch.einsum("btd,hde->bthe", x, w(b + "attn.W_" + m)) + w(b + "attn.b_" + m)) for m in "QKV")
        scores = torch.einsum("bthe,bshe->bhts", q, k) / math.sqrt(c["d_head"])
        if c["causal"]:
            T = x.shape[1]
            scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        scores = hook(b + "attn.hook_attn_scores", scores)
        pattern = hook(b + "attn.hook_pattern", torch.softmax(scores, -1))
        z = hook(b + "attn.hook_z", torch.einsum("bhts,bshe->bthe", pattern, v))
        return hook(b + "hook_attn_out", torch.einsum("bthe,hed->btd", z, w(b + "attn.W_O")) + w(b + "attn.b_O"))

    def mlp(self, x, b, hook):
        w = self.w
        pre = hook(b + "mlp.hook_pre", x @ w(b + "mlp.W_in") + w(b + "mlp.b_in"))
        post = hook(b + "mlp.hook_post", F.relu(pre) if self.c["act_fn"] == "relu" else F.gelu(pre))
        return hook(b + "hook_mlp_out", post @ w(b + "mlp.W_out") + w(b + "mlp.b_out"))

    def block(self, resid, l, hook):
        c = self.c
        b = "blocks.%d." % l
        ln = c["normalization"] == "LN"
        has_mlp = c["d_mlp"] > 0
        resid = hook(b + "hook_resid_pre", resid)
        if c["ln_position"] == "post":
            # TransformerLens' BertBlock names: the sums before each LayerNorm are hook_resid_mid and
            # hook_resid_post, the block's output is hook_normalized_resid_post
            resid = resid + self.attention(resid, b, hook)
            if has_mlp:
                resid = self.layer_norm(hook(b + "hook_resid_mid", resid), b + "ln1", hook)
                resid = hook(b + "hook_resid_post", resid + self.mlp(resid, b, hook))
                resid = self.layer_norm(resid, b + "ln2", hook)
            else:
                resid = self.layer_norm(hook(b + "hook_resid_post", resid), b + "ln1", hook)
            return hook(b + "hook_normalized_resid_post", resid)
        x = self.layer_norm(resid, b + "ln1", hook) if ln else resid
        resid = resid + self.attention(x, b, hook)
        if has_mlp:
            resid = hook(b + "hook_resid_mid", resid)
            x = self.layer_norm(resid, b + "ln2", hook) if ln else resid
            resid = resid + self.mlp(x, b, hook)
        return hook(b + "hook_resid_post", resid)

    def forward(self, tokens, hook=lambda name, x: x):
        c, w = self.c, self.w
        B, T = tokens.shape
        resid = hook("hook_embed", w("embed.W_E")[tokens])
        if c["positional"] != "none":
            table = w("pos_embed.W_pos")[:T] if c["positional"] == "learned" else sinusoidal(T, c["d_model"])
            resid = resid + hook("hook_pos_embed", table.expand(B, T, -1))
        for l in range(c["n_layers"]):
            resid = self.block(resid, l, hook)
        if c["normalization"] == "LN" and c["ln_position"] == "pre":
            resid = self.layer_norm(resid, "ln_final", hook)
        r = c["readout"]
        if r == "unembed":
            return resid @ w("unembed.W_U") + w("unembed.b_U")
        if r == "flatten":
            return resid.reshape(B, T * c["d_model"]) @ w("readout.W") + w("readout.b")
        pooled = hook("pooler.hook_out", torch.tanh(resid[:, 0] @ w("pooler.W") + w("pooler.b")))
        return pooled @ w("readout.W") + w("readout.b")


def check_post_ln_block(m, x):
    """the post-LN block against PyTorch's own encoder layer with the same weights"""
    c = m.c
    D, H, E = c["d_model"], c["n_heads"], c["d_head"]
    assert c["d_mlp"] > 0 and H * E == D, "torch.nn.TransformerEncoderLayer needs an MLP and n_heads * d_head = d_model"
    layer = torch.nn.TransformerEncoderLayer(D, H, dim_feedforward=c["d_mlp"], dropout=0.0,
                                             activation=c["act_fn"], layer_norm_eps=c["ln_eps"],
                                             batch_first=True, norm_first=False)
    w, b = m.w, "blocks.0."
    with torch.no_grad():
        # in_proj rows are the output features of Q, K, V in turn, heads side by side
        layer.self_attn.in_proj_weight.copy_(torch.cat([w(b + "attn.W_" + k).permute(0, 2, 1).reshape(H * E, D)
                                                        for k in "QKV"]))
        layer.self_attn.in_proj_bias.copy_(torch.cat([w(b + "attn.b_" + k).reshape(H * E) for k in "QKV"]))
        layer.self_attn.out_proj.weight.copy_(w(b + "attn.W_O").reshape(H * E, D).t())
        layer.self_attn.out_proj.bias.copy_(w(b + "attn.b_O"))
        layer.linear1.weight.copy_(w(b + "mlp.W_in").t()); layer.linear1.bias.copy_(w(b + "mlp.b_in"))
        layer.linear2.weight.copy_(w(b + "mlp.W_out").t()); layer.linear2.bias.copy_(w(b + "mlp.b_out"))
        layer.norm1.weight.copy_(w(b + "ln1.w")); layer.norm1.bias.copy_(w(b + "ln1.b"))
        layer.norm2.weight.copy_(w(b + "ln2.w")); layer.norm2.bias.copy_(w(b + "ln2.b"))
        T = x.shape[1]
        mask = torch.ones(T, T, dtype=torch.bool).triu(1) if c["causal"] else None
        layer.train()   # the slow path, the one written in Python: no fused inference kernel
        want = layer(x, src_mask=mask)
        got = m.block(x, 0, lambda name, a: a)
    err = (want - got).abs().max().item()
    assert err < 1e-5, "the post-LN block differs from torch.nn.TransformerEncoderLayer by %g" % err
    return err


def save_safetensors(path, tensors, metadata):
    dtypes = {np.dtype(np.float32): "F32", np.dtype(np.int32): "I32"}
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        raw = a.tobytes()
        header[name] = {"dtype": dtypes[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for raw in blobs:
            f.write(raw)
    os.replace(tmp, path)


def load_safetensors(path):
    dtypes = {"F32": np.float32, "I32": np.int32}
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    out = {}
    for name, h in header.items():
        a, b = h["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=dtypes[h["dtype"]]).reshape(h["shape"]).copy()
    return out, meta


def loss_of(kind, out, targets):
    if kind == "mse":
        return F.mse_loss(out, targets)
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), targets.reshape(-1))


# The fixtures under tests/fixtures: name, config, batch, positions, seed. The first three
# are the shapes the tests were first written against; the rest cover post-LN and readouts.
FIXTURES = [
    ("causal_ln_gelu", {"n_layers": 2, "d_model": 32, "n_heads": 4, "d_head": 8, "d_mlp": 64, "d_vocab": 11,
                        "n_ctx": 12, "act_fn": "gelu", "normalization": "LN", "causal": True}, 3, 7, 1),
    ("encoder_ln_relu", {"n_layers": 3, "d_model": 16, "n_heads": 2, "d_head": 6, "d_mlp": 40, "d_vocab": 7,
                         "n_ctx": 10, "act_fn": "relu", "normalization": "LN", "causal": False}, 4, 10, 2),
    ("attn_only_noln", {"n_layers": 1, "d_model": 24, "n_heads": 3, "d_head": 8, "d_mlp": 0, "d_vocab": 13,
                        "n_ctx": 9, "act_fn": "relu", "normalization": "none", "causal": True}, 2, 9, 3),
]


def fixture_targets(c, B, T, g):
    r = c["readout"]
    if r == "unembed":
        return torch.randint(0, c["d_vocab_out"], (B, T), generator=g), "cross_entropy"
    if r == "flatten":
        return torch.randint(0, c["d_out"], (B,), generator=g), "cross_entropy"
    return torch.randn(B, c["d_out"], generator=g), "mse"


def make_fixture(name, cfg, B, T, seed, out_dir):
    torch.manual_seed(seed)
    m = Transformer(cfg, seed)
    c = m.c
    g = torch.Generator().manual_seed(1000 + seed)
    with torch.no_grad():
        # trained-like weights: every term of the model matters, LayerNorm gains and biases too
        for n in m.names:
            m.w(n).add_(torch.randn(m.w(n).shape, generator=g) * 0.1)
    tokens = torch.randint(0, c["d_vocab"], (B, T), generator=g)
    targets, loss_kind = fixture_targets(c, B, T, g)
    checked = None
    if c["ln_position"] == "post":
        checked = check_post_ln_block(m, torch.randn(B, T, c["d_model"], generator=g))

    cache = {}
    def keep(hname, x):
        x.retain_grad()
        cache[hname] = x
        return x
    out = m(tokens, keep)
    loss = loss_of(loss_kind, out, targets)
    loss.backward()

    t = {n: m.w(n).detach().numpy() for n in m.names}
    t["fixture.tokens"] = tokens.numpy().astype(np.int32) + 1   # milua's ids are 1-based
    if loss_kind == "mse":
        t["fixture.targets"] = targets.numpy().astype(np.float32)
    else:
        t["fixture.targets"] = targets.numpy().astype(np.int32) + 1
    t["fixture.logits"] = out.detach().numpy()
    t["fixture.loss"] = np.array(loss.item(), dtype=np.float32)
    for n in m.names:
        t["fixture.grad." + n] = m.w(n).grad.numpy()
    for hname, x in cache.items():
        t["fixture.cache." + hname] = x.detach().numpy()
        if x.grad is not None:
            t["fixture.cache_grad." + hname] = x.grad.numpy()
    if c["n_heads"] > 1:
        def ablate(hname, x):   # head 2 (1-based) of layer 0 zeroed at hook_z
            if hname == "blocks.0.attn.hook_z":
                x = x.clone()
                x[:, :, 1, :] = 0
            return x
        with torch.no_grad():
            t["fixture.ablated_logits"] = m(tokens, ablate).numpy()
    meta = {"config": json.dumps(cfg), "format": "pt", "kind": "milua-fixture", "token_base": "1",
            "loss": loss_kind, "made_by": "tests/reference/transformer.py", "torch": torch.__version__}
    path = os.path.join(out_dir, name + ".safetensors")
    save_safetensors(path, t, meta)
    print(json.dumps({"written": path, "tensors": len(t), "loss": loss.item(),
                      "post_ln_block_vs_torch": checked}))


def check(path):
    t, meta = load_safetensors(path)
    cfg = json.loads(meta["config"])
    m = Transformer(cfg)
    with torch.no_grad():
        for n in m.names:
            m.w(n).copy_(torch.from_numpy(t[n]))
        tokens = torch.from_numpy(t["fixture.tokens"].astype(np.int64) - 1)
        out = m(tokens)
    want = torch.from_numpy(t["fixture.logits"])
    err = (out - want).abs().max().item()
    kind = meta.get("loss", "cross_entropy")
    targets = torch.from_numpy(t["fixture.targets"])
    targets = targets if kind == "mse" else targets.long() - 1
    loss_err = abs(loss_of(kind, out, targets).item() - float(t["fixture.loss"]))
    ok = err < 1e-5 * max(1.0, want.abs().max().item()) and loss_err < 1e-5
    print(json.dumps({"file": path, "max_logit_diff": err, "loss_diff": loss_err, "ok": ok}))
    return ok


def bench(c, steps, threads):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    m = Transformer(c)
    c = m.c
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.01)
    g = torch.Generator().manual_seed(1)
    B, T = c["batch"], c["seq"]
    data = [(torch.randint(0, c["d_vocab"], (B, T), generator=g), fixture_targets(c, B, T, g)) for _ in range(8)]
    def step(i):
        tokens, (targets, kind) = data[i % len(data)]
        loss = loss_of(kind, m(tokens), targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()
    for i in range(3):
        step(i)
    t0 = time.perf_counter()
    for i in range(steps):
        step(i)
    dt = (time.perf_counter() - t0) / steps
    print(json.dumps({"engine": "pytorch-" + torch.__version__, "threads": threads, "ms_per_step": dt * 1e3,
                      "tokens_per_s": B * T / dt}))


def main(argv):
    def flag(name, default):
        return type(default)(argv[argv.index(name) + 1]) if name in argv else default
    if not argv:
        sys.exit(__doc__)
    if argv[0] == "fixtures":
        here = os.path.dirname(os.path.abspath(__file__))
        out_dir = argv[1] if len(argv) > 1 else os.path.normpath(os.path.join(here, "..", "fixtures"))
        os.makedirs(out_dir, exist_ok=True)
        for name, cfg, B, T, seed in FIXTURES:
            make_fixture(name, cfg, B, T, seed, out_dir)
    elif argv[0] == "check" and len(argv) > 1:
        sys.exit(0 if all([check(p) for p in argv[1:]]) else 1)
    elif argv[0] == "bench" and len(argv) > 1:
        with open(argv[1]) as f:
            c = json.load(f)
        bench(c, flag("--steps", 20), flag("--threads", 2))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
