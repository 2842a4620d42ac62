"""What an htmx request asks for, as an Annotated dependency."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header


@dataclass(frozen=True)
class HtmxInfo:
    """`fragment` is true when htmx asks for a swap, not a whole page.

    A history-restore request (the browser's cache missed on Back) wants
    the whole page, as a plain load does.
    """

    request: bool
    history_restore: bool

    @property
    def fragment(self) -> bool:
        return self.request and not self.history_restore


def htmx_info(
    hx_request: Annotated[str | None, Header(include_in_schema=False)] = None,
    hx_history_restore_request: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> HtmxInfo:
    return HtmxInfo(hx_request == "true", hx_history_restore_request == "true")


Htmx = Annotated[HtmxInfo, Depends(htmx_info)]
