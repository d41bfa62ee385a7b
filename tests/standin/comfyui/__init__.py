# SPDX-License-Identifier: Apache-2.0
"""A ComfyUI stand-in that speaks the recorded protocol (``tests/fixtures/comfyui``), for CI.

It is a fake of the engine boundary only, held to the real ComfyUI by
``tests/contract/test_comfyui_contract.py``.
"""

from tests.standin.comfyui.server import StandinComfyUI, StandinOptions

__all__ = ["StandinComfyUI", "StandinOptions"]
