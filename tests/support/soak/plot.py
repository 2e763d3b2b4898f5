"""The soak's plot, drawn with Pillow (mlx-vlm's imaging stack; no plotting library): the server's RSS over the
run (quiet points as dots, the crash and the bursts marked), then TTFT and inter-token p50/p95 per minute."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT, PAD = 1100, 760, 70
COLORS = {"ttft_ms_p50": (31, 119, 180), "ttft_ms_p95": (148, 103, 189), "itl_ms_p50": (44, 160, 44), "itl_ms_p95": (214, 39, 40)}


class Panel:
    """A plot area: ``ys`` in the values' units, or their log10 with ``log`` (gridlines at the powers of ten)."""

    def __init__(self, draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], xs: tuple[float, float],
                 ys: tuple[float, float], font: ImageFont.ImageFont, log: bool = False):
        self.d, self.box, self.xs, self.ys, self.font, self.log = draw, box, xs, ys, font, log
        left, top, right, bottom = box
        draw.rectangle(box, outline=(0, 0, 0))
        steps = range(math.floor(ys[0]), math.ceil(ys[1]) + 1) if log else [ys[0] + (ys[1] - ys[0]) * i / 5 for i in range(6)]
        for y in steps:  # gridlines with their values
            if not ys[0] <= y <= ys[1]:
                continue
            py = self.at(xs[0], 10**y if log else y)[1]
            draw.line((left, py, right, py), fill=(225, 225, 225))
            draw.text((left - 6, py), f"{10**y:g}" if log else f"{y:.0f}", fill=(0, 0, 0), anchor="rm", font=font)
        for i in range(11):
            x = xs[0] + (xs[1] - xs[0]) * i / 10
            px, _ = self.at(x, ys[0])
            draw.text((px, bottom + 6), f"{x:.1f}", fill=(0, 0, 0), anchor="ma", font=font)

    def at(self, x: float, y: float) -> tuple[float, float]:
        left, top, right, bottom = self.box
        y = math.log10(max(y, 1e-9)) if self.log else y
        fx = (x - self.xs[0]) / ((self.xs[1] - self.xs[0]) or 1)
        fy = (y - self.ys[0]) / ((self.ys[1] - self.ys[0]) or 1)
        return left + fx * (right - left), bottom - fy * (bottom - top)

    def line(self, points: list[tuple[float, float]], color: tuple[int, int, int], width: int = 2) -> None:
        if len(points) > 1:
            self.d.line([self.at(x, y) for x, y in points], fill=color, width=width)
        for x, y in points if len(points) == 1 else ():
            self.dot(x, y, color)

    def dot(self, x: float, y: float, color: tuple[int, int, int], r: int = 3) -> None:
        px, py = self.at(x, y)
        self.d.ellipse((px - r, py - r, px + r, py + r), fill=color)

    def vertical(self, x: float, color: tuple[int, int, int], label: str) -> None:
        px, _ = self.at(x, self.ys[0])
        top, bottom = self.box[1], self.box[3]
        for y in range(top, bottom, 8):  # dashed
            self.d.line((px, y, px, min(y + 4, bottom)), fill=color)
        self.d.text((px + 3, top + 3), label, fill=color, font=self.font)


def plot(report: dict[str, Any], path: Path) -> None:
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=13)
    samples = report["samples"]
    end = max([report["minutes"], *(s["t"] / 60 for s in samples)])
    xs = (0.0, end)

    rss = [(s["t"] / 60, s["rss_bytes"] / 2**20) for s in samples]
    low, high = min((y for _, y in rss), default=0), max((y for _, y in rss), default=1)
    top = Panel(draw, (PAD, 50, WIDTH - 30, HEIGHT // 2 - 30), xs, (max(0.0, low * 0.9), high * 1.05 + 1), font)
    draw.text((PAD, 18), f"server RSS (MiB) over {report['minutes']:g} minutes; ceiling {report['limits']['rss_ceiling'] / 2**20:.0f} MiB"
              "; dots: quiet points", fill=(0, 0, 0), font=font)
    for life in sorted({s["life"] for s in samples}):
        top.line([(s["t"] / 60, s["rss_bytes"] / 2**20) for s in samples if s["life"] == life], (31, 119, 180))
    for s in samples:
        if s["quiet"]:
            top.dot(s["t"] / 60, s["rss_bytes"] / 2**20, (0, 0, 0))
    for b in report["bursts"]:
        top.vertical(b["t"] / 60, (180, 180, 180), "burst")
    if report.get("crash"):
        top.vertical(report["crash"]["killed_at"] / 60, (214, 39, 40), "SIGKILL")

    minutes = report["minutes_table"]
    values = [m[k] for m in minutes for k in COLORS if m[k] is not None]
    span = (math.floor(math.log10(max(min(values, default=1), 0.1))), math.ceil(math.log10(max(values, default=10))))
    bottom = Panel(draw, (PAD, HEIGHT // 2 + 40, WIDTH - 30, HEIGHT - 40), xs, span, font, log=True)
    draw.text((PAD, HEIGHT // 2 + 8), "latency per minute (ms, log), streams:", fill=(0, 0, 0), font=font)
    x = PAD + 260
    for key, color in COLORS.items():
        draw.line((x, HEIGHT // 2 + 15, x + 20, HEIGHT // 2 + 15), fill=color, width=3)
        draw.text((x + 25, HEIGHT // 2 + 8), key.replace("_ms_", " "), fill=color, font=font)
        x += 120
        bottom.line([(min(m["minute"] + 0.5, end), m[key]) for m in minutes if m[key] is not None], color)
    draw.text((WIDTH // 2, HEIGHT - 16), "minutes", fill=(0, 0, 0), anchor="ma", font=font)
    image.save(path)
