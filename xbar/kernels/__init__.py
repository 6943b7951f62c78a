"""Numba kernels of the crossbar signal chain.

DAC (``convert.dac_quantize``: inputs -> integer codes, bit-serial slices) ->
conductance product (BLAS for the noise-free part; ``convert.device_noise_product``
for per-device read noise) -> ``convert.read_out``: column-mode read noise, ADC
per column, shift-add over tiles and slices into the output -> scaling back to
weight units (in ``xbar.crossbar``).
Static device state comes from ``devices`` (programming error, stuck-at,
drift) and all randomness from ``rng`` (counter-based, keyed by index).
"""

from ._jit import CACHE_DIR, CACHING, announce_compilation, cache_dir, cache_is_warm, compile_notice

__all__ = ["CACHE_DIR", "CACHING", "announce_compilation", "cache_dir", "cache_is_warm", "compile_notice"]
