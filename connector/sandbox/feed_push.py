"""A feed store's change pushes, emulated: signed Standard Webhooks deliveries posted to `/webhooks/feed/<id>`.

`FeedPusher` builds the exact bytes a feed store sends (`connector.sandbox.feed_signing`) and posts them; it
can misbehave the way real senders do: send a delivery twice, or send an older change after a newer one.
"""

from __future__ import annotations

import requests

from connector.sandbox.feed_signing import Delivery, FeedSigner, new_secret

__all__ = ["Delivery", "FeedPusher", "new_secret"]


class FeedPusher(FeedSigner):
    """Signs deliveries with a merchant's `webhook_secret` and posts them to the receiver at `url`."""

    def __init__(self, url: str, secret: str, session: requests.Session | None = None) -> None:
        super().__init__(secret)
        self.url = url
        self._http = session or requests.Session()

    def send(self, delivery: Delivery, *, timeout: float = 10.0) -> requests.Response:
        return self._http.post(self.url, data=delivery.body, headers=delivery.headers, timeout=timeout)
