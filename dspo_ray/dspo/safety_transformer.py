"""The SafetyTransformer (paper section 3.1, Figure 2) and the MLP discriminator of its ablation.

Both map a (padded) window of states and actions to per-step values z_t and a trajectory logit
mean_t z_t over the real steps; the safety signal is z_tau = sigmoid(logit).

SafetyTransformer, as in return-conditioned sequence models and Preference Transformer:
state and action each get a linear embedding, a learned timestep embedding is added to both,
tokens are interleaved (s_1, a_1, s_2, a_2, ...), LayerNorm, a causal GPT-2 stack; x_t is the
output at the action token a_t (it has seen s_1..s_t and a_1..a_t). The preference-attention head
maps x_t to a query q_t, a key k_t (both d-dimensional) and a scalar value v_t; z_t is the
softmax(q_t . k_s)-weighted sum of v_s over ALL real positions s (no causal mask, no 1/sqrt(d),
as in Preference Transformer). Padding is masked out of both attentions and of the mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class InputNormalizer(nn.Module):
    """Per-dimension standardisation of states and actions with the training data's statistics."""

    def __init__(self, obs_dim: int, act_dim: int):
        super().__init__()
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))
        self.register_buffer("act_mean", torch.zeros(act_dim))
        self.register_buffer("act_std", torch.ones(act_dim))

    def set_stats(self, observations, actions) -> None:
        obs = torch.as_tensor(observations, dtype=torch.float32)
        act = torch.as_tensor(actions, dtype=torch.float32)
        self.obs_mean.copy_(obs.mean(0))
        self.obs_std.copy_(obs.std(0, correction=0).clamp_min(1e-3))
        self.act_mean.copy_(act.mean(0))
        self.act_std.copy_(act.std(0, correction=0).clamp_min(1e-3))

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (obs - self.obs_mean) / self.obs_std, (act - self.act_mean) / self.act_std


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
        """``allowed``: (B, 1, L, L) bool, True where query i may attend to key j; None: plain
        causal attention (no padding), which takes torch's fused kernel."""
        b, length, dim = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.n_heads, dim // self.n_heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, is_causal=allowed is None,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.resid_dropout(self.proj(y.transpose(1, 2).reshape(b, length, dim)))


class GPTBlock(nn.Module):
    """GPT-2 block: pre-LayerNorm attention and MLP, residual connections."""

    def __init__(self, dim: int, n_heads: int, dropout: float):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, n_heads, dropout)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim),
                                 nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), allowed)
        return x + self.mlp(self.ln2(x))


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the last axis of the True entries of ``mask``."""
    m = mask.to(values.dtype)
    return (values * m).sum(-1) / m.sum(-1).clamp_min(1.0)


class SafetyTransformer(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, max_timestep: int, embed_dim: int = 256,
                 n_layers: int = 1, n_heads: int = 4, dropout: float = 0.1,
                 attention_dim: int = 256):
        super().__init__()
        self.config = dict(obs_dim=obs_dim, act_dim=act_dim, max_timestep=max_timestep,
                           embed_dim=embed_dim, n_layers=n_layers, n_heads=n_heads,
                           dropout=dropout, attention_dim=attention_dim)
        self.normalizer = InputNormalizer(obs_dim, act_dim)
        self.embed_state = nn.Linear(obs_dim, embed_dim)
        self.embed_action = nn.Linear(act_dim, embed_dim)
        self.embed_timestep = nn.Embedding(max_timestep, embed_dim)
        self.embed_ln = nn.LayerNorm(embed_dim)
        self.embed_dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(GPTBlock(embed_dim, n_heads, dropout) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(embed_dim)
        # the preference-attention head: q_t, k_t in R^d and a scalar v_t from one linear map
        self.attention_dim = attention_dim
        self.head = nn.Linear(embed_dim, 2 * attention_dim + 1)
        self.max_timestep = max_timestep

    def encode(self, obs: torch.Tensor, act: torch.Tensor, timesteps: torch.Tensor,
               mask: torch.Tensor) -> torch.Tensor:
        """x_t (B, T, E): the causal stack's output at each action token."""
        b, t, _ = obs.shape
        obs, act = self.normalizer(obs, act)
        time = self.embed_timestep(timesteps.clamp(0, self.max_timestep - 1))
        tokens = torch.stack([self.embed_state(obs) + time, self.embed_action(act) + time], dim=2)
        x = self.embed_dropout(self.embed_ln(tokens.reshape(b, 2 * t, -1)))
        allowed = None  # no padding: plain causal attention
        if not bool(mask.all()):
            token_mask = mask.repeat_interleave(2, dim=1)  # (B, 2T)
            causal = torch.ones(2 * t, 2 * t, dtype=torch.bool, device=obs.device).tril()
            # every query (padded ones included) keeps at least its first key: no row is all -inf
            allowed = (causal[None] & token_mask[:, None, :])[:, None]
        for block in self.blocks:
            x = block(x, allowed)
        return self.ln_f(x)[:, 1::2]

    def step_values(self, obs: torch.Tensor, act: torch.Tensor, timesteps: torch.Tensor,
                    mask: torch.Tensor) -> torch.Tensor:
        """z_t (B, T): the preference attention over all real steps of the window."""
        x = self.encode(obs, act, timesteps, mask)
        d = self.attention_dim
        q, k, v = self.head(x).split([d, d, 1], dim=-1)
        scores = torch.einsum("btd,bsd->bts", q, k)
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        return torch.einsum("bts,bs->bt", scores.softmax(-1), v.squeeze(-1))

    def forward(self, obs: torch.Tensor, act: torch.Tensor, timesteps: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        """The window's logit: mean of z_t over its real steps (signal = sigmoid of it)."""
        return masked_mean(self.step_values(obs, act, timesteps, mask), mask)


class MLPDiscriminator(nn.Module):
    """The ablation backbone (paper Figure 4): z_t = MLP(s_t, a_t), logit = mean_t z_t."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...] = (512, 512, 512),
                 dropout: float = 0.1, max_timestep: int | None = None):
        super().__init__()
        self.config = dict(obs_dim=obs_dim, act_dim=act_dim, hidden=tuple(hidden), dropout=dropout,
                           max_timestep=max_timestep)
        self.normalizer = InputNormalizer(obs_dim, act_dim)
        layers: list[nn.Module] = []
        sizes = [obs_dim + act_dim, *hidden]
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU(), nn.Dropout(dropout)]
        self.net = nn.Sequential(*layers, nn.Linear(sizes[-1], 1))

    def step_values(self, obs, act, timesteps, mask) -> torch.Tensor:
        obs, act = self.normalizer(obs, act)
        return self.net(torch.cat([obs, act], -1)).squeeze(-1)

    def forward(self, obs, act, timesteps, mask) -> torch.Tensor:
        return masked_mean(self.step_values(obs, act, timesteps, mask), mask)


class ReturnClassifier(nn.Module):
    """q(r | z): the K-class variational predictor of the return bin from the signal (vCLUB)."""

    def __init__(self, n_bins: int = 10, hidden: int = 64):
        super().__init__()
        self.config = dict(n_bins=n_bins, hidden=hidden)
        self.net = nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                 nn.ReLU(), nn.Linear(hidden, n_bins))

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        """Log-probabilities (B, K) of each return bin given signals (B,)."""
        return self.net(signal.unsqueeze(-1)).log_softmax(-1)


def vclub_bound(log_q: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """The categorical vCLUB bound (paper eq. 4) from log q(. | z_i) (B, K) and bins y (B,):
    mean_i log q(y_i | z_i) - mean_{i,j} log q(y_j | z_i)."""
    positive = log_q.gather(1, bins[:, None]).mean()
    all_pairs = log_q[:, bins].mean()  # (B, B): row i, column j is log q(y_j | z_i)
    return positive - all_pairs


def build_discriminator(variant: str, obs_dim: int, act_dim: int, max_timestep: int,
                        **kwargs) -> nn.Module:
    if variant == "safety_transformer":
        return SafetyTransformer(obs_dim, act_dim, max_timestep, **kwargs)
    if variant == "mlp":
        return MLPDiscriminator(obs_dim, act_dim, max_timestep=max_timestep, **kwargs)
    raise ValueError(f"unknown discriminator variant {variant!r}; use 'safety_transformer' or 'mlp'")


DISCRIMINATORS = {"safety_transformer": SafetyTransformer, "mlp": MLPDiscriminator}
