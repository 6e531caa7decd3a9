"""The one paginator: FullStory's token paging, for every list the source reads.

FullStory pages with a token in the answer that the next request sends back: segments
(`nextPaginationToken` -> `paginationToken`; older docs and the spec use other names,
docs/fullstory-api.md) and batch import results (`next_page_token` -> `page_token`).

`TokenPaginator` is dlt's `JSONResponseCursorPaginator` plus what FullStory needs beyond it:
the answer's token may have one of several names, and a token that comes back again stops the
paging (a server bug would otherwise page forever) and is kept in `.repeated`. `token_pages`
drives it. It does not go through dlt's `RESTClient.paginate` because each caller fetches a
page its own way: FullStory's errors with the caller's context, and batch import results that
answer 202 until ready (batch_jobs.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from dlt.sources.helpers.requests import Request, Response
from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator

logger = logging.getLogger(__name__)

Page = dict[str, Any]


class TokenPaginator(JSONResponseCursorPaginator):
    def __init__(self, token_fields: Sequence[str], cursor_param: str) -> None:
        super().__init__(cursor_path=token_fields[0], cursor_param=cursor_param)
        self.token_fields = tuple(token_fields)
        self.repeated: str | None = None  # the token that came back again, if one did
        self._seen: set[str] = set()

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        self.advance(response.json())

    def advance(self, page: Page) -> None:
        """Reads the next token from an answer; no token, or a repeated one, ends the paging."""
        token = next((str(page[name]) for name in self.token_fields if page.get(name)), None)
        if token is not None and token in self._seen:
            self.repeated, token = token, None
        if token is not None:
            self._seen.add(token)
        self._next_reference = token


def token_pages(
    fetch: Callable[[dict[str, Any]], Page],
    paginator: TokenPaginator,
    params: dict[str, Any],
    endpoint: str,
    context: str = "",
) -> Iterator[Page]:
    """Every page: `fetch(params)` with the paginator's token added from the second page on.
    `endpoint` and `context` name the list in the warning about a repeated token."""
    request = Request(params=dict(params))
    paginator.init_request(request)
    while True:
        page = fetch(dict(request.params))
        yield page
        paginator.advance(page)
        if not paginator.has_next_page:
            if paginator.repeated is not None:
                fields = " / ".join(paginator.token_fields)
                where = f" ({context})" if context else ""
                logger.warning("%s repeated %s %r%s; stopping", endpoint, fields, paginator.repeated, where)
            return
        paginator.update_request(request)
