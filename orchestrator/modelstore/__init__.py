# SPDX-License-Identifier: Apache-2.0
"""Base models in the models store: pulled from the hub, a URL or a file, recorded with their sha256."""
