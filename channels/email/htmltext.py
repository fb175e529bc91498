"""HTML mail turned into plain text: no markup, no scripts, no remote content survives.

Block elements become line breaks and ``<blockquote>`` becomes ``> `` quoting, so the
quoted-history folding works the same for HTML-only mail as for plain text.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_SKIP = {"script", "style", "head", "title", "noscript", "template", "object", "iframe",
         "svg", "math"}
_BLOCK = {"p", "div", "br", "li", "tr", "table", "ul", "ol", "h1", "h2", "h3", "h4", "h5",
          "h6", "hr", "pre", "section", "article", "header", "footer", "dl", "dt", "dd",
          "address", "center", "form", "fieldset", "blockquote", "body", "html"}
_SPACES = re.compile(r"[ \t\r\n\f\v\u200b]+")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current: list[str] = []
        self.skip_depth = 0
        self.quote_depth = 0
        self.pre_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip_depth += 1
            return
        if tag in _BLOCK:
            self.newline(explicit=tag == "br")
        if tag == "blockquote":
            self.quote_depth += 1
        elif tag == "pre":
            self.pre_depth += 1
        elif tag == "li":
            self.current.append("- ")
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self.current.append(f"[{alt.strip()}]")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            return
        self.handle_starttag(tag, attrs)
        if tag == "blockquote":
            self.quote_depth -= 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
            return
        if tag in _BLOCK:
            self.newline()
        if tag == "blockquote":
            self.quote_depth = max(0, self.quote_depth - 1)
        elif tag == "pre":
            self.pre_depth = max(0, self.pre_depth - 1)
        elif tag in {"td", "th"}:
            self.current.append(" ")

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        if self.pre_depth:
            parts = data.split("\n")
            for part in parts[:-1]:
                self.current.append(part)
                self.newline()
            self.current.append(parts[-1])
            return
        self.current.append(_SPACES.sub(" ", data))

    def newline(self, explicit: bool = False) -> None:
        """End the current line; only an explicit ``<br>`` makes an empty one."""
        line = "".join(self.current).strip()
        self.current = []
        if line:
            self.lines.append("> " * self.quote_depth + line)
        elif explicit and self.lines and self.lines[-1] != "":
            self.lines.append("")


def html_to_text(html: str) -> str:
    """The readable text of an HTML document, with blank-line runs collapsed."""
    parser = _TextExtractor()
    try:
        parser.feed(html)
        parser.close()
    except (AssertionError, ValueError):  # pathological markup: keep what we have
        pass
    parser.newline()
    text = "\n".join(parser.lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
