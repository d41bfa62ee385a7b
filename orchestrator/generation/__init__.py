# SPDX-License-Identifier: Apache-2.0
"""Image generation on ComfyUI backends: acceptance (resolve, build, validate), the ``generation`` job kind,
outputs in storage, and the /v1/generations, /v1/templates, /v1/backends and /v1/models endpoints.

:func:`orchestrator.generation.feature.install` plugs it into the app.
"""
