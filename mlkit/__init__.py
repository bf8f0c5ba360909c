"""A notebook-first, reproducible research-to-production ML repo: real data, honest validation, served with BentoML and Gradio."""

__version__ = "0.1.0"
