"""Sound devices as PortAudio sees them: the `gapfill devices` listing and the choice of a device for `live`.

A device is named by its index or by a substring of its name, as in python-sounddevice's examples; a
name that matches no device, or more than one, is an error the user can act on. Every PortAudio failure
becomes a one-line `GapfillError`, its reason worded by `portaudio_reason` (here and in the live front end).

sounddevice initialises PortAudio when it is first imported, so the device list is the one of that
moment.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from realtime.errors import GapfillError


def sounddevice() -> ModuleType:
    """The `sounddevice` module, or a `GapfillError` if the PortAudio library is missing."""
    try:
        import sounddevice as sd
    except OSError as exc:  # sounddevice raises OSError when libportaudio cannot be loaded
        raise GapfillError(f"cannot use sound devices: {exc} (install PortAudio, e.g. libportaudio2)") from None
    return sd


def portaudio_reason(exc: Exception) -> str:
    """The reason a `sounddevice.PortAudioError` gives, without its error code: 'Invalid sample rate' for
    'Invalid sample rate [PaErrorCode -9997]'."""
    return str(exc).split(" [PaErrorCode")[0]


@dataclass(frozen=True)
class Device:
    """One PortAudio device: `index`, `name`, host API name, channel counts, default rate (Hz)."""

    index: int
    name: str
    host_api: str
    input_channels: int
    output_channels: int
    default_rate_hz: float
    default_input: bool
    default_output: bool


def list_devices() -> list[Device]:
    """Every device PortAudio sees, with the default input and output marked."""
    sd = sounddevice()
    try:
        infos = sd.query_devices()
        host_apis = sd.query_hostapis()
        default_in, default_out = _default_indices(sd)
    except sd.PortAudioError as exc:
        raise GapfillError(f"cannot list sound devices: {exc}") from None
    return [
        Device(
            index=int(info["index"]),
            name=str(info["name"]),
            host_api=str(host_apis[info["hostapi"]]["name"]),
            input_channels=int(info["max_input_channels"]),
            output_channels=int(info["max_output_channels"]),
            default_rate_hz=float(info["default_samplerate"]),
            default_input=int(info["index"]) == default_in,
            default_output=int(info["index"]) == default_out,
        )
        for info in infos
    ]


def _default_indices(sd: ModuleType) -> tuple[int, int]:
    """(default input index, default output index); -1 where there is none."""
    indices = []
    for kind in ("input", "output"):
        try:
            indices.append(int(sd.query_devices(kind=kind)["index"]))
        except (sd.PortAudioError, ValueError):
            indices.append(-1)
    return indices[0], indices[1]


def format_devices(devices: list[Device]) -> str:
    """The `gapfill devices` table: '>' marks the default input, '<' the default output."""
    if not devices:
        return "no sound devices found (PortAudio sees none)"
    width = max(len(d.name) for d in devices)
    api_width = max(len(d.host_api) for d in devices)
    lines = []
    for d in devices:
        mark = (">" if d.default_input else " ") + ("<" if d.default_output else " ")
        lines.append(
            f"{mark} {d.index:>3}  {d.name:<{width}}  {d.host_api:<{api_width}}  "
            f"{d.input_channels:>3} in {d.output_channels:>3} out  {d.default_rate_hz:>8.0f} Hz"
        )
    lines.append("('>' default input, '<' default output; name a device by index or part of its name)")
    return "\n".join(lines)


def resolve(spec: int | str | None, kind: str) -> Device:
    """The device for `spec` (index, name substring or None for the default) that can do `kind` I/O.

    kind: 'input' or 'output'. Raises `GapfillError` for no match, an ambiguous name, or a device
    without channels of that kind.
    """
    sd = sounddevice()
    devices = list_devices()
    try:
        info = sd.query_devices(spec, kind)
    except ValueError as exc:  # sounddevice: no match / several matches for a name substring
        message = str(exc)
        if message.startswith("Multiple"):
            raise GapfillError(f"{kind} device name '{spec}' is ambiguous: {_names(devices, kind)}") from None
        raise GapfillError(f"no {kind} device matching '{spec}' (see 'gapfill devices')") from None
    except sd.PortAudioError:
        if spec is None:
            raise GapfillError(f"there is no default {kind} device (see 'gapfill devices')") from None
        raise GapfillError(f"no {kind} device with index {spec} (see 'gapfill devices')") from None
    device = next(d for d in devices if d.index == int(info["index"]))
    channels = device.input_channels if kind == "input" else device.output_channels
    if channels == 0:
        raise GapfillError(f"device {device.index} '{device.name}' has no {kind} channels (see 'gapfill devices')")
    return device


def _names(devices: list[Device], kind: str) -> str:
    usable = [d for d in devices if (d.input_channels if kind == "input" else d.output_channels) > 0]
    return ", ".join(f"{d.index} '{d.name}'" for d in usable)


def check_duplex(input_device: Device, output_device: Device, rate_hz: int, channels: int) -> None:
    """Raise a one-line `GapfillError` if the devices refuse `channels` float32 channels at `rate_hz`."""
    sd = sounddevice()
    for device, kind, check in (
        (input_device, "input", sd.check_input_settings),
        (output_device, "output", sd.check_output_settings),
    ):
        available = device.input_channels if kind == "input" else device.output_channels
        if channels > available:
            raise GapfillError(
                f"{kind} device {device.index} '{device.name}' has {available} {kind} channels, "
                f"{channels} requested"
            )
        try:
            check(device=device.index, channels=channels, dtype="float32", samplerate=rate_hz)
        except sd.PortAudioError as exc:
            raise GapfillError(
                f"{kind} device {device.index} '{device.name}' refuses {rate_hz} Hz, {channels} channels: "
                f"{portaudio_reason(exc)}"
            ) from None
