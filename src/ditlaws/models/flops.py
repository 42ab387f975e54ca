"""Closed-form parameter counts and forward FLOPs of both DiT families (nanoGPT-style, kept next to the models).

Notation: D = width, h = MLP hidden size (4·D by default), d_h = head dim, k = depth, N = image tokens,
L = text tokens, T = text_dim, P = in_channels·patch², F = 256 (time sinusoid features).
Every nn.Linear has a bias. FLOPs count 2 per multiply-add of every matmul (biases, norms, softmax and
elementwise ops are not counted), forward pass, one sample.

Parameters per block
  in-context:  12·D² + 11·D + 2·d_h  (h = 4D; in general 4D² + 2Dh + 7D + h + 2·d_h)
               = qkv 3D²+3D, out D²+D, MLP 2Dh+h+D, two RMSNorm weights 2D, QK-RMSNorm weights 2·d_h
  cross-attn:  22·D² + 20·D + 4·d_h  (h = 4D; in general 14D² + 2Dh + 16D + h + 4·d_h)
               = self-attn 4D²+4D, cross-attn (q, kv, out) 4D²+4D, MLP 2Dh+h+D, adaLN 6D²+6D,
                 the cross-attn pre-norm D (the other two norms are modulated, without weights), QK-norms 4·d_h

"non_embedding" = the blocks (+ the final RMSNorm weight D for in-context). It excludes the input/output-side
embeddings: patch embedding, text projection (its RMSNorm and linear), pooled projection (cross-attn),
time-embedding MLP, learned null text, the output layer (and the final adaLN modulation for cross-attn).
"total" = every parameter of the model (all are trained).
"""

from ditlaws.models.presets import TIME_FREQ_DIM, Dims


def _block_params(family: str, m: Dims) -> int:
    d, h, dh = m.width, m.mlp_hidden, m.head_dim
    attn = 4 * d * d + 4 * d + 2 * dh
    mlp = 2 * d * h + h + d
    if family == "in_context":
        return attn + mlp + 2 * d
    return 2 * attn + mlp + d + (6 * d * d + 6 * d)


def parameter_counts(family: str, m: Dims) -> dict:
    d, t, p = m.width, m.text_dim, m.patch_dim
    non_embedding = m.depth * _block_params(family, m)
    embedding = (
        (p * d + d)  # patch embedding
        + (TIME_FREQ_DIM * d + d + d * d + d)  # time MLP
        + (t + t * d + d)  # text projection: RMSNorm + linear
        + m.text_len * t  # null text states
        + (d * p + p)  # output linear
    )
    if family == "in_context":
        non_embedding += d  # final RMSNorm
    else:
        embedding += (t + t * d + d) + t  # pooled projection + null pooled
        embedding += 2 * d * d + 2 * d  # final adaLN modulation
    return {"total": non_embedding + embedding, "non_embedding": non_embedding}


def flops_per_sample(family: str, m: Dims) -> int:
    d, h, n, L, p = m.width, m.mlp_hidden, m.image_tokens, m.text_len, m.patch_dim
    embed = 2 * n * p * d + 2 * L * m.text_dim * d + 2 * (TIME_FREQ_DIM * d + d * d) + 2 * n * d * p
    if family == "in_context":
        s = 1 + L + n
        block = 2 * s * (4 * d * d + 2 * d * h) + 4 * s * s * d  # projections + MLP, then QK^T and AV
        return embed + m.depth * block
    self_attn = 2 * n * 4 * d * d + 4 * n * n * d
    cross_attn = 2 * n * 2 * d * d + 2 * L * 2 * d * d + 4 * n * L * d  # q and out on N, kv on L, scores, AV
    mlp = 2 * n * 2 * d * h
    ada_ln = 2 * d * 6 * d
    embed += 2 * m.text_dim * d + 2 * d * 2 * d  # pooled projection, final adaLN
    return embed + m.depth * (self_attn + cross_attn + mlp + ada_ln)
