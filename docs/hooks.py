"""MkDocs hook (mkdocs.yml `hooks:`): pages show tables generated from the code, never copies of them.

A line `<!-- methods-table -->` in a page becomes `cams.methods.registry.markdown_table()`, the
table `cams methods` prints and the README carries. The methods page must have the marker: the
build stops if it is gone, so the site cannot lose the table silently.
"""
from __future__ import annotations

MARKER = "<!-- methods-table -->"
#: pages that must carry the marker (paths relative to docs/)
REQUIRED = ("methods.md",)


def fill_tables(markdown: str, page_path: str) -> str:
    """`markdown` with every marker line replaced by the registry's table.

    Args:
        markdown: the page's Markdown source.
        page_path: the page's path under docs/ ("methods.md"), named in the error.

    Returns:
        The Markdown with the generated table in place of the marker.

    Raises:
        ValueError: a page of `REQUIRED` has no marker.
    """
    if MARKER not in markdown:
        if page_path in REQUIRED:
            raise ValueError(f"docs/{page_path} lost its {MARKER} line; put it back where the methods table goes")
        return markdown
    from cams.methods.registry import markdown_table

    return markdown.replace(MARKER, markdown_table().rstrip("\n"))


def on_page_markdown(markdown, page, config, files):  # noqa: ARG001  (MkDocs' hook signature)
    """MkDocs event: fill the generated tables of each page before it is rendered."""
    from mkdocs.exceptions import PluginError

    try:
        return fill_tables(markdown, page.file.src_uri)
    except ValueError as err:
        raise PluginError(str(err)) from None
