"""An HTML template for `dvc plots show` with Vega, Vega-Lite and Vega-Embed inlined.

DVC's default page loads them from a CDN, so it renders blank offline. `.dvc/config` points
`plots.html_template` at the file this writes (`make setup` writes it).
"""

from __future__ import annotations

from pathlib import Path

from handpose.atomic import write_text

DEFAULT_PATH = Path(".dvc/plots/offline.html")

PAGE = """<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  {refresh_tag}
  <title>handpose: DVC plots</title>
  <script>{bundle}</script>
  <style>body { font-family: sans-serif; } table { border-spacing: 15px; }</style>
</head>
<body>
  {plot_divs}
</body>
</html>
"""


def offline_template() -> str:
    """The page, with the JavaScript bundled by vl-convert (no network needed at any point)."""
    import vl_convert

    # DVC fills {plot_divs} and {refresh_tag}; its {scripts} (the CDN tags) is left out on purpose.
    return PAGE.replace("{bundle}", vl_convert.javascript_bundle())


def write_offline_template(path: str | Path = DEFAULT_PATH) -> Path:
    path = Path(path)
    write_text(path, offline_template())
    return path
