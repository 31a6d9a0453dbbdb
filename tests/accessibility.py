"""What the browser tests check on every page: axe-core's rules, the width, numbers' alignment.

axe-core comes from npm (tests/axe/package.json; `.ci/run` installs it with
`npm ci --prefix tests/axe`). It is added to every page of a browser
context as an init script, which the pages' Content-Security-Policy does
not govern, so the site's policy stays as it is in production. Without
it the accessibility checks are skipped with a reason, except in CI.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, ViewportSize

AXE = Path(
    os.environ.get(
        "AXE_CORE",
        Path(__file__).resolve().parent / "axe" / "node_modules" / "axe-core" / "axe.min.js",
    )
)
#: A phone (an iPhone 12 to 15 held upright) and a laptop.
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}


def add_axe(context: BrowserContext) -> None:
    if not AXE.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {AXE} is missing: .ci/run runs npm ci --prefix tests/axe")
        pytest.skip(f"needs axe-core at {AXE}: npm ci --prefix tests/axe (or set AXE_CORE)")
    context.add_init_script(path=str(AXE))


def violations(page: Page) -> list[str]:
    """axe-core's violations on the page as it is now, one line per rule and element."""
    found: list[dict[str, Any]] = page.evaluate(
        """async () => (await axe.run(document)).violations.map((v) => ({
            id: v.id, help: v.help, targets: v.nodes.map((n) => n.target.join(" ") + ": "
                + (n.failureSummary || "").split("\\n").slice(1).join("; ").trim()),
        }))"""
    )
    return [f"{v['id']} ({v['help']}): {target}" for v in found for target in v["targets"]]


def too_wide(page: Page) -> int:
    """How many pixels the page is wider than the window (0 when it fits)."""
    extra: int = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    return extra


def overflowing(page: Page) -> list[str]:
    """The outermost elements past the window's right edge, to say what to fix.

    An element inside a scroll box does not count: the box scrolls. But an
    absolutely placed one counts unless the box is its containing block, as
    the browser sees it too.
    """
    found: list[str] = page.evaluate(
        """() => {
        const width = document.documentElement.clientWidth + 1;
        const clips = (el) => getComputedStyle(el).overflowX !== "visible";
        const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
          + [...el.classList].map((c) => "." + c).join("");
        const out = [];
        for (const el of document.querySelectorAll("body *")) {
          const right = el.getBoundingClientRect().right;
          if (right <= width) continue;
          let parent = el.parentElement;
          while (parent && parent !== document.body) {
            if (clips(parent) || parent.getBoundingClientRect().right > width) break;
            parent = parent.parentElement;
          }
          if (parent === document.body) out.push(`${name(el)} (right edge ${Math.round(right)})`);
        }
        return out.slice(0, 5);
    }"""
    )
    return found


def misaligned_numbers(page: Page) -> list[str]:
    """Cells under a right-aligned number heading (`th.num`) that are not right-aligned."""
    found: list[str] = page.evaluate(
        """() => {
        const wrong = [];
        for (const table of document.querySelectorAll("table.list")) {
          const heads = [...table.querySelectorAll("thead th")];
          heads.forEach((th, column) => {
            if (!th.classList.contains("num")) return;
            const cells = [th, ...[...table.querySelectorAll("tbody tr, tfoot tr")]
              .map((row) => row.children[column]).filter((cell) => cell && cell.colSpan === 1)];
            for (const cell of cells) {
              if (getComputedStyle(cell).textAlign !== "right") {
                wrong.push(`${table.id || "table"} column ${th.textContent.trim()}: `
                           + cell.textContent.trim());
              }
            }
          });
        }
        return wrong;
    }"""
    )
    return found
