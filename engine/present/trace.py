"""The text of a trace's typed data: locks, rules, decisions.

Ours. engine.sim.trace records locks, object references and merge verdicts
as data; this is the one place that words them, for the text picture, the
JSON document and the web alike.
"""

from __future__ import annotations

from engine.sim.trace import Event, Lock, LockKind, ObjRef, Refs, Rule


def lock_text(lock: Lock) -> str:
    """ "anon_vma rwsem (write) of anon_vma#2", "folio lock of folio#7"."""
    kind, target = lock.kind, lock.target
    if isinstance(target, range):
        if len(target) == 1:
            return lock_text(lock.first())
        return f"{kind.value} of folio#{target.start}-folio#{target.stop - 1}, each in turn"
    if kind is LockKind.PAGE_TABLE_LOCKS:
        return "page-table locks of the old and new tables"
    mode = f" ({lock.mode})" if lock.mode and kind is not LockKind.VMA_WRITE_LOCK else ""
    if isinstance(target, ObjRef):
        where = target.label
    elif isinstance(target, int):
        where = f"{target:#x}"
    else:
        where = str(target)
    if kind is LockKind.VMA_WRITE_LOCK:
        return f"{kind.value} {where}"
    if kind is LockKind.PTE_LOCK:
        return f"{kind.value} of table {where}"
    return f"{kind.value}{mode} of {where}"


def lock_summary(locks: tuple[Lock, ...], held: tuple[Lock, ...]) -> list[str]:
    """The locks a step ran under, as lines: each held one by name; locks
    of one kind taken and dropped one after another (the walk's folio locks)
    as one line, "folio lock of each folio in turn, 512"."""
    still = set(held)
    in_turn: dict[LockKind, int] = {}
    for lock in locks:
        if lock not in still:
            in_turn[lock.kind] = in_turn.get(lock.kind, 0) + lock.taken
    lines: list[str] = []
    said: set[LockKind] = set()
    for lock in locks:
        count = in_turn.get(lock.kind, 0)
        if lock in still or count == 1:
            lines.append(lock_text(lock))
        elif lock.kind not in said:
            said.add(lock.kind)
            target = lock.target
            if isinstance(target, range):
                what = "folio"
            else:
                what = target.kind if isinstance(target, ObjRef) else "table"
            lines.append(f"{lock.kind.value} of each {what} in turn, {count}")
    return lines


def rule_text(rule: Rule) -> str:
    """ "is_mergeable_vma: vm_flags", or the function alone."""
    return f"{rule.function}: {rule.check}" if rule.check else rule.function


def event_values(event: Event) -> dict[str, str]:
    """An event's rule, candidate and compared values, as the text and the
    JSON show them (rule and candidate first)."""
    shown: dict[str, str] = {}
    if event.rule is not None:
        shown["rule"] = rule_text(event.rule)
    if event.candidate is not None:
        shown["candidate"] = event.candidate.label
    shown.update(event.values)
    return shown


def ref_runs(refs: Refs | tuple[ObjRef, ...]) -> list[str]:
    """`refs` with each run of one kind and consecutive ids as one entry
    ("folio:5-2052 (2048)"), the others as str(ref) ("vma:3"): what a step
    touched, in words that grow with its kinds of change, not its pages."""
    runs: list[tuple[ObjRef, int]] = []
    for item in refs.items if isinstance(refs, Refs) else refs:
        if isinstance(item, range):
            ref, count = ObjRef("folio", item.start), len(item)
        else:
            ref, count = item, 1
        if runs and runs[-1][0].kind == ref.kind and runs[-1][0].id + runs[-1][1] == ref.id:
            runs[-1] = (runs[-1][0], runs[-1][1] + count)
        else:
            runs.append((ref, count))
    return [
        str(first) if count == 1 else f"{first}-{first.id + count - 1} ({count})"
        for first, count in runs
    ]
