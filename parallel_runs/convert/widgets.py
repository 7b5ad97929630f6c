"""The widgets the ComfyUI frontend gives a node, derived from `/object_info` alone.

A UI-format workflow stores widget values by position (`widgets_values`), so converting it
needs the exact widget list the frontend builds for each node type: one widget per
widget-type input in `input_order`, plus the frontend's extra widgets (the
`control_after_generate` combo after seed-like numbers, the filter list after controlled
combos, the upload button of media loaders). The rules mirror ComfyUI_frontend's
`litegraphService.addInputs`, `useIntWidget`/`useComboWidget` and `addValueControlWidgets`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Input types the frontend turns into widgets (ComfyWidgets in src/scripts/widgets.ts,
# including the upload types that its core extensions register).
WIDGET_TYPES = frozenset(
    {
        "INT",
        "FLOAT",
        "BOOLEAN",
        "STRING",
        "MARKDOWN",
        "COMBO",
        "IMAGEUPLOAD",
        "AUDIOUPLOAD",
        "COLOR",
        "IMAGECOMPARE",
        "BOUNDING_BOX",
        "CHART",
        "GALLERIA",
        "PAINTER",
        "COMPOSITOR",
        "TEXTAREA",
        "CURVE",
        "RANGE",
        "VIDEO_EDIT",
        "RESOLUTION_PREVIEW",
        "BOUNDING_BOXES",
        "LIGHT_INFO_PREVIEW",
        "COLORS",
        "WEBCAM",
    }
)
# Widget types the prompt never gets (`options.serialize === false`): upload buttons.
_NO_PROMPT_TYPES = frozenset({"IMAGEUPLOAD", "AUDIOUPLOAD"})
# Widget types the workflow never stores (`widget.serialize === false`).
_NOT_PERSISTED_TYPES = frozenset({"IMAGECOMPARE"})
# Values of `control_after_generate` that name a mode rather than a widget.
CONTROL_MODES = frozenset({"fixed", "increment", "decrement", "randomize", "increment-wrap"})
# Legacy names: an INT input so named gets a control widget unless the spec says otherwise.
SEED_NAMES = ("seed", "noise_seed")
# Save nodes whose `filename_prefix` gets %node.widget% / %date:...% replacement on queue
# (src/extensions/core/saveImageExtraOutput.ts).
SAVE_NODE_TYPES = frozenset(
    {
        "SaveImage",
        "SaveImageAdvanced",
        "SaveSVGNode",
        "SaveVideo",
        "SaveAnimatedWEBP",
        "SaveWEBM",
        "SaveAudio",
        "SaveAudioMP3",
        "SaveAudioOpus",
        "SaveAudioAdvanced",
        "SaveGLB",
        "Save3DAdvanced",
        "SaveGaussianSplat",
        "SavePointCloud",
        "SaveAnimatedPNG",
        "CLIPSave",
        "VAESave",
        "ModelSave",
        "LoraSave",
        "SaveLatent",
    }
)


@dataclass(frozen=True)
class Widget:
    """One frontend widget: where its value sits and whether the prompt gets it."""

    name: str
    kind: str  # input type (INT, COMBO, ...) or "control" / "filter" / "extension"
    default: Any = None
    persisted: bool = True  # holds a slot in widgets_values
    in_prompt: bool = True  # sent as an input of the API prompt
    dynamic_prompts: bool = False


# Widgets that core frontend extensions append to particular node types (previewAny.ts,
# saveMesh.ts): (name, stored in widgets_values, sent in the prompt, initial value).
_EXTENSION_WIDGETS: Mapping[str, tuple[tuple[str, bool, bool, Any], ...]] = {
    "PreviewAny": (("preview_text", False, False, None), ("preview_mode", False, False, None)),
    "SaveGLB": (("image", True, True, ""),),
}


@dataclass(frozen=True)
class InputSpec:
    """One input of a node definition, as the frontend's V2 schema sees it."""

    name: str
    type: str  # "COMBO" for list-valued specs
    options: Mapping[str, Any]
    optional: bool
    combo_values: tuple[Any, ...] = ()

    @property
    def widget_type(self) -> str:
        return str(self.options.get("widgetType") or self.type)

    @property
    def is_widget(self) -> bool:
        return self.widget_type in WIDGET_TYPES and not self.options.get("forceInput")


@dataclass(frozen=True)
class NodeLayout:
    """What the frontend builds for a node type: input slots, widgets, output types."""

    inputs: tuple[tuple[str, str, bool], ...]  # (name, type, is_widget_input) in slot order
    widgets: tuple[Widget, ...]
    output_types: tuple[str, ...]
    specs: tuple[InputSpec, ...]

    @property
    def widget_names(self) -> frozenset[str]:
        return frozenset(w.name for w in self.widgets)


def parse_spec(name: str, raw: Any, optional: bool) -> InputSpec:
    """One `[type, options]` entry of object_info; list types are combos."""
    raw = list(raw) if isinstance(raw, (list, tuple)) else [raw]
    head = raw[0] if raw else "*"
    options = raw[1] if len(raw) > 1 and isinstance(raw[1], Mapping) else {}
    if isinstance(head, (list, tuple)):
        return InputSpec(name, "COMBO", options, optional, tuple(head))
    values = options.get("options") if head == "COMBO" else None
    return InputSpec(name, str(head), options, optional, tuple(values or ()))


def ordered_specs(node_def: Mapping[str, Any]) -> list[InputSpec]:
    """Required then optional inputs, honouring `input_order` like getOrderedInputSpecs."""
    sections = node_def.get("input") or {}
    specs: dict[str, InputSpec] = {}
    for section, optional in (("required", False), ("optional", True)):
        for name, raw in (sections.get(section) or {}).items():
            specs[name] = parse_spec(name, raw, optional)
    add_upload_input(specs)
    order = node_def.get("input_order")
    if not isinstance(order, Mapping):
        return list(specs.values())
    result: list[InputSpec] = []
    for section, optional in (("required", False), ("optional", True)):
        for name in order.get(section) or ():
            spec = specs.get(name)
            if spec is not None and spec.optional == optional and spec not in result:
                result.append(spec)
    result += [spec for spec in specs.values() if spec not in result]
    return result


def add_upload_input(specs: dict[str, InputSpec]) -> None:
    """The upload button the Comfy.UploadImage / UploadAudio extensions add to loaders."""
    for spec in list(specs.values()):
        if spec.optional:
            continue
        media = any(spec.options.get(k) is True for k in ("image_upload", "video_upload"))
        media = media or spec.options.get("animated_image_upload") is True
        if media and spec.type == "COMBO":
            specs["upload"] = InputSpec("upload", "IMAGEUPLOAD", spec.options, False)
            return
    audio = specs.get("audio")
    if audio and not audio.optional and audio.options.get("audio_upload") is True:
        specs["upload"] = InputSpec("upload", "AUDIOUPLOAD", {}, False)


def control_widgets(spec: InputSpec) -> list[Widget]:
    """The frontend's value-control widgets after a number or combo widget."""
    flag = spec.options.get("control_after_generate")
    kind = spec.widget_type
    if kind == "INT":
        wanted = flag if flag is not None else spec.name in SEED_NAMES
    elif kind in ("FLOAT", "COMBO"):
        wanted = flag
    else:
        wanted = False
    if not wanted:
        return []
    mode = flag if isinstance(flag, str) and flag in CONTROL_MODES else "randomize"
    control = Widget("control_after_generate", "control", mode, in_prompt=False)
    if kind == "COMBO" and not spec.options.get("multi_select"):
        return [control, Widget("control_filter_list", "filter", "", in_prompt=False)]
    return [control]


def default_value(spec: InputSpec) -> Any:
    """The value a freshly created widget holds (before widgets_values are applied)."""
    kind = spec.widget_type
    default = spec.options.get("default")
    if kind == "COMBO":
        if spec.options.get("multi_select"):
            return []
        if default:
            return default
        if spec.combo_values:
            return spec.combo_values[0]
        return "Loading..." if spec.options.get("remote") else None
    if kind in ("INT", "FLOAT"):
        return 0 if default is None else default
    if kind == "BOOLEAN":
        return False if default is None else default
    if kind == "STRING":
        return "" if default is None else default
    if kind == "IMAGEUPLOAD":
        return "image"
    return default


def widgets_for(spec: InputSpec) -> list[Widget]:
    kind = spec.widget_type
    in_prompt = kind not in _NO_PROMPT_TYPES
    dynamic = kind == "STRING" and spec.options.get("dynamicPrompts") is True
    persisted = kind not in _NOT_PERSISTED_TYPES
    main = Widget(spec.name, kind, default_value(spec), persisted, in_prompt, dynamic)
    return [main, *control_widgets(spec)]


def node_layout(node_type: str, node_def: Mapping[str, Any]) -> NodeLayout:
    """Slots and widgets in the frontend's order: sockets first, then widget inputs."""
    specs = ordered_specs(node_def)
    sockets = [(s.name, s.type, False) for s in specs if not s.is_widget]
    widget_specs = [s for s in specs if s.is_widget]
    widget_inputs = [(s.name, s.type, True) for s in widget_specs]
    widgets = [w for s in widget_specs for w in widgets_for(s)]
    widgets += [
        Widget(name, "extension", default, persisted, in_prompt)
        for name, persisted, in_prompt, default in _EXTENSION_WIDGETS.get(node_type, ())
    ]
    outputs = tuple(
        "*" if t == "COMFY_MATCHTYPE_V3" else ",".join(t) if isinstance(t, list) else str(t)
        for t in node_def.get("output") or ()
    )
    return NodeLayout(tuple(sockets + widget_inputs), tuple(widgets), outputs, tuple(specs))


def migrate_widget_values(layout: NodeLayout, values: Sequence[Any]) -> list[Any]:
    """Drop stale values of inputs that became `forceInput` (litegraphUtil.migrateWidgetsValues)."""
    values = list(values)
    names = layout.widget_names
    skipped = {w.name for w in layout.widgets if not w.persisted}
    flags: list[bool] = []
    for spec in layout.specs:
        if not (spec.name in names or spec.options.get("forceInput")):
            continue
        if spec.name in skipped:
            continue
        forced = bool(spec.options.get("forceInput"))
        flags += [forced, False] if spec.options.get("control_after_generate") else [forced]
    persisted = sum(1 for w in layout.widgets if w.persisted)
    if True not in flags and len(values) == persisted:
        return values
    compacted = [
        v for i, v in enumerate(values) if i >= len(layout.widgets) or layout.widgets[i].persisted
    ]
    if len(compacted) == len(flags):
        aligned = compacted
    elif len(values) == len(flags):
        aligned = values
    else:
        return values
    return [v for v, forced in zip(aligned, flags, strict=True) if not forced]


def restore_values(layout: NodeLayout, widgets_values: Any) -> list[Any]:
    """Each widget's value after loading (aligned with `layout.widgets`): its default,
    replaced by the saved value at its position among the stored widgets."""
    saved = widgets_values if isinstance(widgets_values, list) else []
    saved = migrate_widget_values(layout, saved)
    values: list[Any] = []
    position = 0
    for widget in layout.widgets:
        value = widget.default
        if widget.persisted:
            if position < len(saved):
                value = saved[position]
            position += 1
        values.append(value)
    return values
