# SPDX-License-Identifier: Apache-2.0
"""Installing the engines (ComfyUI, kohya sd-scripts) under ``<var_dir>/engines`` and finding them again."""
