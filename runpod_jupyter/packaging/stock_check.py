"""Preflight's GPU stock check. Jobs that sit IN_QUEUE with throttled workers are most often no
capacity in the chosen pools, with no error anywhere; when the stock read before the deploy says so,
it is cheaper to hear it now. Reads only the mapping it is given (``PreflightOptions.stock``): the
deploy fetches it, and unknown stock (None, or a chosen pool missing from it) says nothing.
"""

from __future__ import annotations

from ..api.models import GPU_POOLS
from ..api.stock import at_least, describe, pools_with_stock
from ..findings import Finding
from .check_context import Context


def check_gpu_stock(ctx: Context) -> list[Finding]:
    """Every chosen pool reads NONE or LOW: workers may wait throttled, jobs IN_QUEUE."""
    stock = ctx.options.stock
    chosen = [g for g in dict.fromkeys(ctx.options.gpu_ids) if g in GPU_POOLS]
    if not stock or not chosen or any(g not in stock for g in chosen):
        return []
    if any(at_least(stock[g], "MEDIUM") for g in chosen):
        return []
    others = pools_with_stock(stock, floor="MEDIUM", exclude=chosen)
    where = "RunPod" if ctx.cloud else "The embedded RunPod"
    message = (f"{where} reports little or no GPU stock in every chosen pool: {describe(stock, chosen)}. "
               "Workers may stay throttled and jobs wait IN_QUEUE with no error.")
    if not others:
        return [Finding("warning", "gpu-no-stock", message,
                        "No other pool reports more stock now: deploy anyway and watch for throttled "
                        "workers, or try again later.")]
    listed = ", ".join(f"{p} ({GPU_POOLS[p].memory_gb} GB, {stock[p]})" for p in others)
    return [Finding(
        "warning", "gpu-no-stock", message,
        f"Add pools that have stock (cheapest first; pick ones with enough memory): {listed}, "
        f"e.g. --gpu {','.join([*chosen, others[0]])}.",
    )]
