"""Deep embedded clustering (Xie, Girshick & Farhadi 2016): refine an encoder so that its codes
sharpen toward their own soft cluster assignments (`nncli cluster MODEL DATA --refine`).

Each code z_i is softly assigned to each centroid μ_j by a Student's t kernel (α = 1),
``q_ij ∝ (1 + ‖z_i − μ_j‖²/α)^(−(α+1)/2)``; the target ``p_ij ∝ q_ij² / f_j`` (f_j = Σ_i q_ij)
squares the assignments, which favours the confident ones, and divides by the cluster's soft
size, so that a large cluster does not swallow the rest. The loss ``KL(P‖Q)``, a mean over the
rows, is minimised in the encoder's weights and the centroids, with P held fixed between
target updates (every ``update_interval`` batches). The gradients in z and μ are the paper's
closed form; from z, the encoder's own backward pass (core/network.py) carries them to its
weights.

The codes are clustered after a fixed affine scaling (``(code − offset) / scale``, the scaler
k-means used), so the centroids live in the scaled space and the gradient reaching the code
is divided by ``scale``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from nncli.core.model import FORWARD_BLOCK_VALUES
from nncli.core.network import MLP
from nncli.core.optimizers import Adam

# Values of the (rows, k, width) differences computed at once (8 MiB of float64).
DISTANCE_BLOCK_VALUES = 1 << 20
ALPHA = 1.0  # the Student's t kernel's degrees of freedom, as in the paper (not worth learning)
# Steps between target updates, at least: with one batch per pass (256 rows or fewer) the first
# update would come after a single step, find nothing changed, and stop as converged.
MIN_UPDATE_STEPS = 8


@dataclass
class TargetUpdate:
    """One update of the target distribution P: where refinement stood then."""

    iteration: int  # batches done so far
    loss: float  # KL(P‖Q), mean over the rows, with the new P
    changed: float  # share of rows whose hard assignment changed since the previous update


@dataclass
class Refinement:
    centroids: np.ndarray  # (k, code width), in the scaled code space
    labels: np.ndarray  # (rows,) each row's most probable cluster after refinement
    iterations: int  # mini-batch steps taken
    changed: float  # the share of rows that changed cluster at the last target update
    converged: bool  # stopped because fewer than ``tol`` changed (not by running out of epochs)
    updates: list[TargetUpdate] = field(default_factory=list)


def soft_assignment(Z: np.ndarray, centroids: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Q (rows, k): each row's Student's t similarity to each centroid, normalised per row."""
    Q = _kernel(_squared_distances(Z, centroids), alpha) ** ((alpha + 1) / 2)
    Q /= Q.sum(axis=1, keepdims=True)
    return Q


def target_distribution(Q: np.ndarray) -> np.ndarray:
    """P (rows, k): q² / f_j (f_j the cluster's soft size), normalised per row."""
    P = Q * Q / Q.sum(axis=0)
    P /= P.sum(axis=1, keepdims=True)
    return P


def kl_loss(P: np.ndarray, Q: np.ndarray) -> float:
    """KL(P‖Q) as a mean over the rows (a term with p = 0 contributes 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(P > 0, P * np.log(P / Q), 0.0)
    return float(terms.sum() / len(P))


def kl_gradients(Z: np.ndarray, centroids: np.ndarray, P: np.ndarray,
                 alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """∂L/∂Z and ∂L/∂μ of :func:`kl_loss` with P fixed (Xie et al. eq. 4 and 5, over n rows):

    ∂L/∂z_i = (α+1)/α · 1/n · Σ_j (1 + ‖z_i − μ_j‖²/α)⁻¹ (p_ij − q_ij)(z_i − μ_j), and
    ∂L/∂μ_j = −(α+1)/α · 1/n · Σ_i (the same terms)."""
    dZ, dmu, _ = _gradients_and_q(Z, centroids, P, alpha)
    return dZ, dmu


def _gradients_and_q(Z: np.ndarray, centroids: np.ndarray, P: np.ndarray,
                     alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`kl_gradients`, and Q on the way (the loss needs it: one distance pass, not two)."""
    kernel = _kernel(_squared_distances(Z, centroids), alpha)  # (1 + d²/α)⁻¹
    Q = kernel ** ((alpha + 1) / 2)
    Q /= Q.sum(axis=1, keepdims=True)  # (as soft_assignment computes it)
    weights = ((alpha + 1) / (alpha * len(Z))) * kernel * (P - Q)  # (rows, k)
    # Σ_j w_ij (z_i − μ_j) = z_i Σ_j w_ij − W·μ, and its sum over i for each j.
    dZ = Z * weights.sum(axis=1, keepdims=True) - weights @ centroids
    dmu = -(weights.T @ Z - centroids * weights.sum(axis=0)[:, None])
    return dZ.astype(Z.dtype, copy=False), dmu.astype(centroids.dtype, copy=False), Q


def encoder_loss_and_gradients(encoder: MLP, X: np.ndarray, centroids: np.ndarray, P: np.ndarray,
                               offset: np.ndarray, scale: np.ndarray) -> tuple[float, np.ndarray]:
    """KL(P‖Q) of the rows ``X`` and ∂L/∂μ; leaves ∂L/∂θ of the encoder's weights and biases in
    its gradient buffers (``encoder.gradients()``), by its own backward pass."""
    code = encoder.forward(X, keep=True)
    Z = (code - offset) / scale
    dZ, dmu, Q = _gradients_and_q(Z, centroids, P)
    loss = kl_loss(P, Q)
    # dL/dcode = dL/dZ / scale; then through the code layer's activation to its pre-activation.
    encoder.backward(encoder.activations[-1].backward(dZ / scale, code))
    return loss, dmu


def refine(encoder: MLP, X: np.ndarray, centroids: np.ndarray, rng: np.random.Generator, *,
           offset: np.ndarray, scale: np.ndarray, epochs: int = 20, batch_size: int = 256,
           learning_rate: float = 1e-3, update_interval: int | None = None, tol: float = 1e-3,
           on_update: Callable[[TargetUpdate], None] | None = None) -> Refinement:
    """Refine ``encoder`` (its weights, in place) and a copy of ``centroids`` by DEC.

    ``X`` holds the encoder's inputs for every row; ``offset``/``scale`` turn its output (the
    code) into the space of ``centroids``. The target P is recomputed from all rows every
    ``update_interval`` batches (default: once per pass over the rows, and at least
    ``MIN_UPDATE_STEPS``); refinement stops when
    fewer than ``tol`` of the rows changed cluster since the previous update, or after
    ``epochs`` passes. Batches are drawn with ``rng``; Adam takes the steps."""
    if epochs < 1:
        raise ValueError("epochs must be at least 1")
    n, dtype = len(X), encoder.dtype
    k = len(centroids)
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of rows ({n}), got {k}")
    offset, scale = np.asarray(offset, dtype), np.asarray(scale, dtype)
    centroids = np.array(centroids, dtype=dtype)
    batch_size = min(batch_size, n)
    batches_per_epoch = -(-n // batch_size)
    update_interval = update_interval or max(batches_per_epoch, MIN_UPDATE_STEPS)
    optimizer = Adam(learning_rate)
    parameters = [*encoder.parameters(), centroids]

    rows_at_once = max(1, FORWARD_BLOCK_VALUES // max(encoder.sizes))

    def codes() -> np.ndarray:
        # In blocks of rows, as TrainedModel applies a network: every layer's activations for
        # a million rows at once would take gigabytes (the forward pass keeps them for backward).
        return np.concatenate([(encoder.forward(X[start : start + rows_at_once]) - offset) / scale
                               for start in range(0, n, rows_at_once)])

    Q = soft_assignment(codes(), centroids)
    labels = Q.argmax(axis=1)
    P = target_distribution(Q)
    updates = [TargetUpdate(0, kl_loss(P, Q), 0.0)]  # the k-means start: nothing changed yet
    if on_update is not None:
        on_update(updates[-1])
    iteration, changed, converged = 0, 1.0, False
    total = epochs * batches_per_epoch
    while iteration < total and not converged:
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            rows = order[start : start + batch_size]
            _, dmu = encoder_loss_and_gradients(encoder, X[rows], centroids, P[rows], offset, scale)
            optimizer.step(parameters, [*encoder.gradients(), dmu])
            iteration += 1
            if iteration % update_interval == 0 or iteration == total:
                Q = soft_assignment(codes(), centroids)
                new_labels = Q.argmax(axis=1)
                changed = float(np.count_nonzero(new_labels != labels)) / n
                labels = new_labels
                P = target_distribution(Q)
                updates.append(TargetUpdate(iteration, kl_loss(P, Q), changed))
                if on_update is not None:
                    on_update(updates[-1])
                if changed < tol:
                    converged = True
            if converged or iteration == total:
                break
    return Refinement(centroids, labels, iteration, changed, converged, updates)


def _squared_distances(Z: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(rows, k) squared distances by the direct difference, not the GEMM form: the kernel near
    d² = 0 wants no cancellation error. Blocks of rows bound the (rows, k, width) temporary."""
    out = np.empty((len(Z), len(centroids)), dtype=np.result_type(Z, centroids))
    step = max(1, DISTANCE_BLOCK_VALUES // max(1, centroids.size))
    for start in range(0, len(Z), step):
        diff = Z[start : start + step, None, :] - centroids[None, :, :]
        np.einsum("ijk,ijk->ij", diff, diff, out=out[start : start + step])
    return out


def _kernel(squared: np.ndarray, alpha: float) -> np.ndarray:
    return 1.0 / (1.0 + squared / alpha)
