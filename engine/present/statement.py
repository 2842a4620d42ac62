"""A statement as text: its source line, its result, its inner steps.

Ours. What the CLI prints and a review reply quotes: the line, what it
returned, the kernel functions it went through with the decisions they took
(indented under each step), then the page picture of the state after it
(or before and after).
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.accounting import metadata
from engine.invariants import lock_order
from engine.mm_types import State
from engine.present.picture import render_state
from engine.present.text import fit
from engine.present.trace import event_values
from engine.sim.simulation import Run, StatementRun
from engine.sim.trace import Event, Unfinished


def render_statement(run: Run, i: int, inner: bool = False) -> str:
    """Statement i's source line and result, its inner steps if `inner`,
    then the picture of every process after it."""
    st = run.statements[i]
    stmt = st.outcome.statement
    out = [f"line {stmt.line}, {stmt.process}: {stmt.source}", f"  = {_result(st)}"]
    if inner:
        for step in run.statement_steps(i):
            order = [v.message for v in lock_order(step.acquired)]
            out += step_lines(step.function, step.summary, step.events, [*step.warnings, *order])
    out.append("")
    out.append(render_state(run.statement_states(i)[1]))
    return "\n".join(fit(out))


def render_before_after(run: Run, i: int) -> str:
    """Statement i's source line and result, then every process before it
    and after it: the two pictures a review reply quotes."""
    st = run.statements[i]
    stmt = st.outcome.statement
    before, after = run.statement_states(i)
    out = [f"line {stmt.line}, {stmt.process}: {stmt.source}", f"  = {_result(st)}"]
    out += ["", "-- before --", render_state(before), "", "-- after --", render_state(after)]
    return "\n".join(fit(out))


def step_lines(
    function: str, summary: str, events: Iterable[Event], warnings: Iterable[str]
) -> list[str]:
    """One inner step as "  function: summary", its decisions indented under it.

    The "(statement)" marker step that opens every statement says nothing
    the header does not, so it has no line.
    """
    if function == "(statement)":
        return []
    lines = [f"  {function}: {summary}"]
    for event in events:
        shown = ", ".join(f"{k}={v}" for k, v in event_values(event).items())
        lines.append(f"    why: {event.function}: {event.decision}")
        if shown:
            lines[-1] += f" ({shown})"
        if event.unfinished is not None:
            lines += unfinished_lines(event.unfinished)
    lines += [f"    WARNING: {w}" for w in warnings]
    return lines


def unfinished_lines(where: Unfinished) -> list[str]:
    """Where the proposal is unfinished: the place, its own comment, and
    what the model does there."""
    comment = f'"{where.comment}"' if where.comment else "(no comment there)"
    return [
        f"    UNFINISHED IN THE PROPOSAL: {where.where}: {comment}",
        f"      modelled: {where.modelled}",
    ]


def metadata_lines(state: State, sizes: bool = True) -> list[str]:
    """What the state holds under its rmap model, its kernel memory (with
    where the sizes come from, if `sizes`), and what a walk of each folio
    visits."""
    m = metadata(state)
    if m.rmap_model == "cow_context":
        objects = (
            f"{m.cow_contexts} cow_contexts ({m.exited_cow_contexts} exited),"
            f" {m.remap_entries} remap entries ({m.remap_offsets} offsets,"
            f" {m.stale_remap_offsets} stale, {m.remap_arrays} arrays),"
            f" {m.maple_nodes} maple nodes"
        )
    else:
        objects = f"{m.anon_vmas} anon_vmas, {m.anon_vma_chains} anon_vma_chains"
    lines = [f"metadata ({m.rmap_model}): {m.vmas} VMAs, {objects}: {m.bytes} bytes"]
    if sizes:
        lines.append(f"  sizes: {m.sizes_source}")
    if m.walks is None:
        lines.append("  rmap walks: not counted (more folios than MAX_WALKED_FOLIOS)")
    for cost, folios in m.walks or ():
        lines.append(
            f"  rmap walk of {folios} folio(s): {cost.vmas} VMAs, {cost.offsets} offsets,"
            f" {cost.rmap_objects} {'cow_contexts' if m.rmap_model == 'cow_context' else 'anon_vmas'}"
        )
    return lines


def _result(st: StatementRun) -> str:
    if st.outcome.check is not None:
        return st.outcome.check.describe()
    result = st.outcome.result
    if result.value is None or result.result != "ok":
        return result.result
    value = result.value
    return f"ok, returns {value:#x}" if value > 0xFFFF else f"ok, returns {value}"
