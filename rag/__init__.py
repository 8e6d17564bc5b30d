"""renda-qa: retrieval question answering over people's-congress publications.

Read the modules in the order the data flows:
config → corpus → normalize → structure → chunking → (embedders, lexical, dense) → store
→ retrieve → answer → cli.
"""

__version__ = "0.1.0"
