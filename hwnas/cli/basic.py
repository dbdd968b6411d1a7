"""``hwnas devices`` and ``hwnas space``."""

from __future__ import annotations

import json

import click

from hwnas.cli._common import console


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def devices(as_json: bool) -> None:
    """List device backends, whether each is available here, and why not."""
    from hwnas.devices.registry import list_devices

    infos = list_devices()
    if as_json:
        click.echo(json.dumps([info.__dict__ for info in infos], indent=2, default=list))
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="hwnas devices")
    for col in ("device", "available", "dtypes", "options", "description / reason"):
        table.add_column(col)
    for info in infos:
        table.add_row(
            info.name, "[green]yes[/]" if info.available else "[red]no[/]", ",".join(info.dtypes),
            "\n".join(info.options) or "-", escape(info.description if info.available else info.reason),
        )
    console().print(table)


@click.group()
def space() -> None:
    """Show or list search spaces (built-in names or YAML/JSON files)."""


@space.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the built-in spaces as one JSON object.")
def space_list(as_json: bool) -> None:
    """List the built-in spaces."""
    from hwnas.space import BUILTIN_SPACES

    if as_json:
        click.echo(json.dumps({name: {"architectures": len(sp), "description": sp.description, "space": sp.to_dict()}
                               for name, sp in BUILTIN_SPACES.items()}, indent=2))
        return
    for name, sp in BUILTIN_SPACES.items():
        click.echo(f"{name:6s} {len(sp):6d} architectures  {sp.description}")


@space.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the space as JSON (a valid space file).")
def space_show(name: str, as_json: bool) -> None:
    """Show the dimensions and ranges of space NAME (built-in name or file)."""
    from hwnas.space import DIMENSIONS, format_choices, get_space

    sp = get_space(name)
    if as_json:
        click.echo(json.dumps(sp.to_dict(), indent=2))
        return
    click.echo(f"space {sp.name}: {len(sp)} valid architectures (heads must divide hidden)")
    if sp.description:
        click.echo(f"  {sp.description}")
    for dim in DIMENSIONS:
        values = sp.choices(dim)
        click.echo(f"  {dim:7s} {format_choices(values):30s} ({len(values)} values)")
    click.echo(f"  smallest {sp.smallest}  ({sp.smallest.num_parameters() / 1e6:.1f}M parameters)")
    click.echo(f"  largest  {sp.largest}  ({sp.largest.num_parameters() / 1e6:.1f}M parameters)")
