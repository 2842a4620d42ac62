"""Where the modelled proposal is unfinished (engine.sim.trace.Unfinished), as
every view shows it: the place, the branch's own comment, what the model does."""

from __future__ import annotations

from pydantic import BaseModel

from engine.sim.trace import Unfinished


class UnfinishedView(BaseModel):
    """ "Unfinished in the proposal": `where` (file:function@commit), the branch's
    `comment` there (None where it has none), and what is `modelled` instead."""

    where: str
    comment: str | None
    modelled: str


def unfinished_view(mark: Unfinished | None) -> UnfinishedView | None:
    return None if mark is None else UnfinishedView(**mark._asdict())
