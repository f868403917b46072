"""MkDocs hook: pages generated from the code at build time.

* `<!-- cli-reference -->`: the help of every `tfp-flows` command, as argparse prints it
  (from `tfp_flows.cli._parser()`), so the reference always matches the installed command.
* `<!-- zoo-reference -->`: every recipe of `tfp_flows.models.RECIPES` with its builder's
  signature, docstring and per-data-set defaults.
"""

import argparse
import inspect
import json
import os
import textwrap

CLI_MARKER = "<!-- cli-reference -->"
ZOO_MARKER = "<!-- zoo-reference -->"


def _subcommands(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            return [(name, helps.get(name) or "", sub) for name, sub in action.choices.items()]
    return []


def cli_reference():
    os.environ["COLUMNS"] = "92"  # argparse wraps its help to the terminal width
    from tfp_flows.cli import _parser

    parser = _parser()
    parts = ["```text", parser.format_help().rstrip(), "```", ""]
    for name, text, sub in _subcommands(parser):
        summary = f"{text[:1].upper()}{text[1:]}." if text else ""
        parts += [f"## tfp-flows {name}", "", summary, "", "```text",
                  sub.format_help().rstrip(), "```", ""]
    return "\n".join(parts)


def _docstring(obj):
    doc = inspect.getdoc(obj) or ""
    return "\n".join(f"    {line}" if line else "" for line in doc.splitlines())


def zoo_reference():
    from tfp_flows import models

    parts = ["| recipe | builder | default data | description |", "|---|---|---|---|"]
    for name, recipe in models.RECIPES.items():
        parts.append(f"| [`{name}`](#{name}) | `{recipe.build.__name__}` | "
                     f"{recipe.default_data} | {recipe.description} |")
    parts += ["", "## `build`", "", "```python",
              f"tfp_flows.models.build{inspect.signature(models.build)}", "```", "",
              _docstring(models.build), ""]
    for name, recipe in models.RECIPES.items():
        signature = textwrap.fill(f"{recipe.build.__name__}{inspect.signature(recipe.build)}",
                                  92, subsequent_indent="    ", break_long_words=False)
        parts += [f"## {name}", "", f"{recipe.description[:1].upper()}"
                  f"{recipe.description[1:]}. Default data: `{recipe.default_data}`.", "",
                  "```python", signature, "```", "", "```text", inspect.getdoc(recipe.build) or "",
                  "```", ""]
        if recipe.data_defaults:
            parts += ["| data set | defaults |", "|---|---|"]
            for data, options in recipe.data_defaults.items():
                shown = json.dumps(options, default=str).replace("|", "\\|")
                parts.append(f"| {'every data set' if data == '*' else data} | `{shown}` |")
            parts.append("")
    return "\n".join(parts)


def on_page_markdown(markdown, page, config, files):
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    if ZOO_MARKER in markdown:
        markdown = markdown.replace(ZOO_MARKER, zoo_reference())
    return markdown
