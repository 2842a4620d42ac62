"""The anon_vma hierarchy and the reverse map of anonymous folios.

Models mm/rmap.c: how a VMA gets its anon_vma (first write fault, fork),
how anon_vma_chains link VMAs to every anon_vma a folio of theirs may point
at, and how an rmap walk goes from a folio back to the VMAs mapping it.
Under the cow_context rmap model each function here does what the branch's
CONFIG_COW_CONTEXT_ANON_RMAP build does (engine.cow_context): anon_vma is
only the DUMMY_ANON_VMA flag, and the walk is cow_context_walk().
"""

from __future__ import annotations

from dataclasses import replace

from engine.cow_context import cow_context_walk, walk_address
from engine.mm_types import VMA, AnonVMA, Folio, State
from engine.pagemap import linear_page_index, vma_address
from engine.sim.kernel import Kernel


def new_folio(
    k: Kernel, ident: int, order: int, vma: VMA | None, addr: int, exclusive: bool = True
) -> Folio:
    """Models mm/rmap.c:folio_add_new_anon_rmap(): a new anonymous folio's rmap fields.

    mapping = vma->anon_vma (an exclusive folio) and index =
    linear_page_index(vma, addr): the pair an rmap walk starts from. The
    folio starts mapped once on every page (the caller maps it).
    """
    nr = 1 << order
    assert vma is not None
    return Folio(
        id=ident,
        order=order,
        mapping=vma.anon_vma,
        index=linear_page_index(vma, addr),
        mapcount=(1,) * nr if order == 0 else (0,) * nr,
        anon_exclusive=(exclusive,) * nr,
        entire_mapcount=1 if order else 0,
    )


def anon_vma_alloc(k: Kernel) -> AnonVMA:
    """Models mm/rmap.c:anon_vma_alloc(): a new root, refcount 1."""
    ident = k.new_id()
    return k.put_anon_vma(AnonVMA(id=ident, root=ident, parent=ident))


def link_avc(k: Kernel, vma: VMA, av_id: int) -> VMA:
    """Models mm/rmap.c:anon_vma_chain_link(): one chain, in both lists."""
    av = k.anon_vma(av_id)
    k.put_anon_vma(replace(av, chains=av.chains | {vma.id}))
    return k.put_vma(replace(vma, avc=(av_id,) + vma.avc))


def anon_vma_prepare(k: Kernel, vma: VMA, mergeable: int | None) -> VMA:
    """Models mm/rmap.c:__anon_vma_prepare(): give a VMA its anon_vma.

    Runs on the first write fault (or COW) in a VMA without one: reuses
    `mergeable`, the compatible neighbour's anon_vma that the caller got
    from mm/vma.c:find_mergeable_anon_vma() (engine.vma imports this
    module, so the caller asks it), else allocates a new root. Under
    cow_context it only sets the DUMMY_ANON_VMA flag (held as the mm's
    context id: VMA docstring), calling no find_mergeable_anon_vma(); no
    anon_vma, no chain.
    """
    assert vma.anon_vma is None
    if k.state.rmap_model == "cow_context":
        return _set_dummy_anon_vma(k, vma, "__anon_vma_prepare")
    av_id = mergeable
    if av_id is None:
        av = anon_vma_alloc(k)
        av = k.put_anon_vma(replace(av, num_children=av.num_children + 1))
        av_id = av.id
        k.event("__anon_vma_prepare", f"allocated anon_vma#{av_id} (a new root)")
    vma = k.put_vma(replace(vma, anon_vma=av_id))
    vma = link_avc(k, vma, av_id)
    av = k.anon_vma(av_id)
    k.put_anon_vma(replace(av, num_active_vmas=av.num_active_vmas + 1))
    return vma


def anon_vma_clone(k: Kernel, dst: VMA, src: VMA) -> VMA:
    """Models mm/rmap.c:anon_vma_clone(): chain dst to every anon_vma of src.

    Used by split, copy_vma, merges (dup_anon_vma) and fork. Only a fork
    arrives with dst.anon_vma cleared, and so only a fork may adopt an
    ancestor anon_vma that no VMA uses any more and that has at most one
    child, bounding the hierarchy's growth over long fork chains. Under
    cow_context it copies the DUMMY_ANON_VMA flag: no chains.
    """
    if k.state.rmap_model == "cow_context":
        if src.anon_vma is None:
            return dst
        return _set_dummy_anon_vma(k, dst, "anon_vma_clone")
    for av_id in reversed(src.avc):
        dst = link_avc(k, dst, av_id)
        av = k.anon_vma(av_id)
        if (
            dst.anon_vma is None
            and src.anon_vma is not None
            and av.num_children < 2
            and av.num_active_vmas == 0
        ):
            dst = k.put_vma(replace(dst, anon_vma=av_id))
            k.event(
                "anon_vma_clone",
                f"reuse anon_vma#{av_id}: no active VMAs and {av.num_children} child",
                num_children=av.num_children,
                num_active_vmas=av.num_active_vmas,
            )
    if dst.anon_vma is not None:
        av = k.anon_vma(dst.anon_vma)
        k.put_anon_vma(replace(av, num_active_vmas=av.num_active_vmas + 1))
    return dst


def anon_vma_fork(k: Kernel, vma: VMA, pvma: VMA) -> VMA:
    """Models mm/rmap.c:anon_vma_fork(): the child VMA's place in the hierarchy.

    The child is chained to all of the parent's anon_vmas (so rmap finds it
    from the parent's folios it now shares) and gets its own anon_vma for
    the folios it will COW, unless an orphaned ancestor can be reused.
    Under cow_context the child's copy keeps the flag (anon_vma_clone()).
    """
    if pvma.anon_vma is None:
        return vma
    if k.state.rmap_model == "cow_context":
        return anon_vma_clone(k, vma, pvma)
    vma = k.put_vma(replace(vma, anon_vma=None, avc=()))
    vma = anon_vma_clone(k, vma, pvma)
    if vma.anon_vma is not None:
        return vma
    parent = k.anon_vma(pvma.anon_vma)
    av = anon_vma_alloc(k)
    av = k.put_anon_vma(replace(av, root=parent.root, parent=parent.id, num_active_vmas=1))
    root = k.anon_vma(parent.root)
    k.put_anon_vma(replace(root, refcount=root.refcount + 1))
    vma = k.put_vma(replace(vma, anon_vma=av.id))
    vma = link_avc(k, vma, av.id)
    parent = k.anon_vma(parent.id)
    k.put_anon_vma(replace(parent, num_children=parent.num_children + 1))
    k.event(
        "anon_vma_fork",
        f"allocated anon_vma#{av.id}, child of anon_vma#{parent.id} (root anon_vma#{root.id})",
    )
    return vma


def unlink_anon_vmas(k: Kernel, vma: VMA) -> VMA:
    """Models mm/rmap.c:unlink_anon_vmas(): drop all of a VMA's chains.

    An anon_vma left with no chains is released: its parent loses a child
    and its reference is put, which frees it (and a non-root drops its
    reference on the root). Under cow_context: the flag is cleared.
    """
    if k.state.rmap_model == "cow_context":
        return k.put_vma(replace(vma, anon_vma=None, avc=()))
    emptied: list[int] = []
    for av_id in vma.avc:
        av = k.anon_vma(av_id)
        av = k.put_anon_vma(replace(av, chains=av.chains - {vma.id}))
        if not av.chains:
            parent = k.anon_vma(av.parent)
            k.put_anon_vma(replace(parent, num_children=parent.num_children - 1))
            emptied.append(av_id)
    if vma.anon_vma is not None:
        av = k.anon_vma(vma.anon_vma)
        k.put_anon_vma(replace(av, num_active_vmas=av.num_active_vmas - 1))
    vma = k.put_vma(replace(vma, anon_vma=None, avc=()))
    for av_id in emptied:
        put_anon_vma(k, av_id)
    return vma


def put_anon_vma(k: Kernel, av_id: int) -> None:
    """Models mm/rmap.c:put_anon_vma(): drop a reference; free at zero."""
    av = k.anon_vma(av_id)
    if av.refcount > 1:
        k.put_anon_vma(replace(av, refcount=av.refcount - 1))
        return
    k.free_anon_vma(av_id)
    k.event("__put_anon_vma", f"freed anon_vma#{av_id}")
    if av.root != av_id and av.root in k.state.anon_vmas:
        put_anon_vma(k, av.root)


def _set_dummy_anon_vma(k: Kernel, vma: VMA, fn: str) -> VMA:
    """CONFIG_COW_CONTEXT_ANON_RMAP: vma->anon_vma = DUMMY_ANON_VMA, "faulted"."""
    ctx = k.mm(vma.mm).cow_context
    k.event(
        fn, f"vma#{vma.id}->anon_vma = DUMMY_ANON_VMA (faulted; folios go to cow_context#{ctx})"
    )
    return k.put_vma(replace(vma, anon_vma=ctx, avc=()))


def folio_anon_vma(state: State, folio: Folio) -> AnonVMA | None:
    """Models mm/rmap.c:folio_anon_vma(): the anon_vma folio->mapping names
    (none under cow_context)."""
    if folio.mapping is None or state.rmap_model == "cow_context":
        return None
    return state.anon_vmas.get(folio.mapping)


def folio_move_anon_rmap(k: Kernel, folio: Folio, vma: VMA) -> Folio:
    """Models mm/rmap.c:folio_move_anon_rmap(): point the folio at vma's anon_vma.

    COW reuse calls it so later rmap walks search only the owner's own
    anon_vma; the RELOCATE_ANON walk calls it to move folios to the new one.
    Under cow_context it moves the folio to the faulting mm's context (the
    reference moves with it: engine.cow_context.folio_references), so an
    exclusive folio sits at the lowest context that maps it.
    """
    return k.put_folio(folio._replace(mapping=vma.anon_vma))


def rmap_walk_anon(
    state: State, folio: Folio, exclusive_stop: bool = True
) -> list[tuple[VMA, int]]:
    """Models mm/rmap.c:rmap_walk_anon(): every (vma, address) rmap visits.

    From folio->mapping, each VMA chained to that anon_vma whose pgoff
    range covers the folio's index, at vma_address() of the index. Under
    cow_context: mm/cow_context.c:cow_context_walk(), as coded, or without
    its exclusive early stop when `exclusive_stop` is False (to find every
    mapping, as a folio's mm ids do: memory._mapped_by_another_mm).
    """
    if state.rmap_model == "cow_context":
        walk = cow_context_walk(state, folio)
        visited = [v for visit in walk.contexts for v in visit.vmas]
        if not exclusive_stop:
            visited += walk.missed
        return [(state.vmas[v], walk_address(state.vmas[v], folio)) for v in visited]
    av = folio_anon_vma(state, folio)
    if av is None:
        return []
    found: list[tuple[VMA, int]] = []
    for vma_id in sorted(av.chains):
        vma = state.vmas.get(vma_id)
        if vma is None:
            continue
        addr = vma_address(vma, folio.index, folio.nr_pages)
        if addr is not None:
            found.append((vma, addr))
    return found
