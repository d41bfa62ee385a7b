"""Typed ComfyUI workflow graphs: builder, templates, validation and format conversion.

A pure library: it imports nothing from the orchestrator and needs only pydantic and the standard library.

- :mod:`comfy_workflows.graph` -- the typed graph builder (API format, field map)
- :mod:`comfy_workflows.templates` -- request models + ``build`` per template, and the registry
- :mod:`comfy_workflows.validation` -- checks against a backend's ``/object_info`` before queueing
- :mod:`comfy_workflows.ui_format` -- API format <-> the editor's UI format
- :mod:`comfy_workflows.object_info` -- typed access to ``/object_info``
"""
