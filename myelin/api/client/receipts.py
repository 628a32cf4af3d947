"""Client-server API, "Typing Notifications", "Receipts" and "Fully read markers"."""

from __future__ import annotations

from typing import Any

import msgspec

from myelin.api.http.endpoint import Routes
from myelin.api.http.request import MatrixRequest

routes = Routes()


class TypingBody(msgspec.Struct):
    typing: bool
    timeout: int | None = None


class ReceiptBody(msgspec.Struct):
    thread_id: str | None = None


class ReadMarkersBody(msgspec.Struct, rename={"fully_read": "m.fully_read", "read": "m.read",
                                              "read_private": "m.read.private"}):
    fully_read: str | None = None
    read: str | None = None
    read_private: str | None = None


@routes.client("PUT", "/rooms/{roomId}/typing/{userId}", body=TypingBody)
async def typing(request: MatrixRequest) -> dict[str, Any]:
    body: TypingBody = request.body
    await request.services.typing.set_typing(request.user.user_id, request.params["userId"],
                                             request.params["roomId"], body.typing, body.timeout)
    return {}


@routes.client("POST", "/rooms/{roomId}/receipt/{receiptType}/{eventId}", body=ReceiptBody,
               body_optional=True)
async def receipt(request: MatrixRequest) -> dict[str, Any]:
    body: ReceiptBody = request.body
    await request.services.receipts.send_receipt(
        request.user.user_id, request.params["roomId"], request.params["receiptType"],
        request.params["eventId"], body.thread_id)
    return {}


@routes.client("POST", "/rooms/{roomId}/read_markers", body=ReadMarkersBody)
async def read_markers(request: MatrixRequest) -> dict[str, Any]:
    body: ReadMarkersBody = request.body
    await request.services.receipts.set_read_markers(
        request.user.user_id, request.params["roomId"], body.fully_read, body.read,
        body.read_private)
    return {}
