"""MSA (the paper, section 3): the style adapters R2I and I2R (ISA, Eq. 1), trained with the image
losses L_img (Eq. 9: SSL on (X_t, X_a), SSL+ on (X_s, X_a)), F seeing the four modalities.

The adapters are part of :class:`~msareid.models.msa.MSANet` (``model.r2i``, ``model.i2r``);
:func:`image_losses` is the image half of a training step, called by the objective before F.
:func:`isa` writes the settings of any row of Tables 4 and 5.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from msareid.systems.base import System

if TYPE_CHECKING:
    import torch

    from msareid.config import Config, LossConfig
    from msareid.models.msa import MSANet


def isa(r2i: bool, i2r: bool, source: str, target: str) -> dict[str, Any]:
    """The settings of which adapters exist and which image loss goes on which pair (Tables 4, 5)."""
    return {"model.r2i": r2i, "model.i2r": i2r, "loss.source_loss": source, "loss.target_loss": target}


class Msa(System):
    """MSA: both adapters, SSL+ on (X_s, X_a) and SSL on (X_t, X_a) (Algorithm 1)."""

    name = "msa"
    title = "MSA"
    summary = "the paper's method: ISA (R2I, I2R) and L_img (SSL, SSL+) on top of B"
    recipe = isa(True, True, "ssl_plus", "ssl")


def describe_isa(config: Config, network: str) -> str | None:
    """The Table 4/5 name of ``config``'s ISA settings on ``network`` (a system's title, or "" for
    F alone); None when it has no adapter."""
    m, loss = config.model, config.loss
    on = f" on {network}'s network" if network else ""
    adapters = [name for name, present in (("R2I", m.r2i), ("I2R", m.i2r)) if present]
    if not adapters:
        return None
    if loss.source_loss == "none" and loss.target_loss == "none":
        return f"B + ISA ({', '.join(adapters)}){on}"
    if len(adapters) == 2 and (loss.source_loss, loss.target_loss) == ("ssl_plus", "ssl"):
        return f"MSA({network})" if network else "MSA"
    return (f"B + ISA + SSC ({', '.join(adapters)}; X_s-X_a {loss.source_loss}, X_t-X_a {loss.target_loss})"
            f"{on}")


def image_losses(net: MSANet, rgb: torch.Tensor, ir: torch.Tensor,
                 loss: LossConfig) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, torch.Tensor]]:
    """The generated modalities (in F's input space), L_img (Eq. 9) and its parts.

    ``L_img = alpha * sum target_loss(X_t, X_a) - beta * sum source_loss(X_s, X_a)`` over the present
    adapters, compared in the network's ISA space. The parts are ``img.target_r2i`` (X_t = IR),
    ``img.source_r2i`` (X_s = RGB), ``img.target_i2r`` (X_t = RGB) and ``img.source_i2r`` (X_s = IR);
    absent adapters and ``"none"`` losses leave theirs out.
    """
    from msareid.losses.image import pair_loss

    rgb_s, ir_s = net.to_isa_space(rgb), net.to_isa_space(ir)
    generated = net.adapt(rgb_s, ir_s)
    pairs = {"r2i": (rgb_s, ir_s), "i2r": (ir_s, rgb_s)}  # name -> (source, target)
    parts: dict[str, torch.Tensor] = {}
    img = rgb.new_zeros(())
    for name, adapted in generated.items():
        source, target = pairs[name]
        t = pair_loss(loss.target_loss, target, adapted, loss.window_size, loss.sigma)
        s = pair_loss(loss.source_loss, source, adapted, loss.window_size, loss.sigma)
        if t is not None:
            parts[f"img.target_{name}"] = t
            img = img + loss.alpha * t
        if s is not None:
            parts[f"img.source_{name}"] = s
            img = img - loss.beta * s
    return {name: net.from_isa_space(g) for name, g in generated.items()}, img, parts
