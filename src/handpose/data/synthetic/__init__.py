"""Procedural hand renderer that writes a FreiHAND-v2-shaped dataset (the offline default dataset)."""

from handpose.data.synthetic.render import Sample, render_sample
from handpose.data.synthetic.write import write_dataset

__all__ = ["Sample", "render_sample", "write_dataset"]
