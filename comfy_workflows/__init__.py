"""Typed ComfyUI workflow graphs: builder, templates, validation and format conversion.

A pure library: it imports nothing from the orchestrator.
"""
