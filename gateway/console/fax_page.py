"""One fax: its pages as images, the attempts timeline, the notification log, downloads, and
the actions resend, cancel and delete (each asks for confirmation first).

Every read goes through ``get_fax(fax_id, account)``: an account's viewer gets 404 for another
account's fax, its page images and its documents alike. Resend is the API's resubmit (a new job
copied from this one), cancel the admin CLI's ``cancel_fax``, delete the API's ``delete_fax``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.api import intake
from gateway.console.web import Refused, console_of, form_of, redirect, render, session_of
from gateway.errors import ConflictError, GatewayError, NotFoundError
from gateway.models import Direction, Fax, FaxStatus

ACTIONS = {
    "resend": "Send this fax again as a new fax job",
    "cancel": "Cancel this fax: it will not be sent",
    "delete": "Delete this fax and its documents for good",
}
_CANCELLABLE = {FaxStatus.ATTACHING_FILES, FaxStatus.PENDING}
_MEDIA = {"pdf": "application/pdf", "tiff": "image/tiff"}


async def _fax(request: Request) -> Fax:
    session = session_of(request)
    fax_id = str(request.path_params["fax_id"])[:64]
    try:
        return await console_of(request).api.store.get_fax(fax_id, session.account_id)
    except NotFoundError as exc:
        raise Refused(404, "There is no such fax in your account.") from exc


def _allowed(fax: Fax) -> list[str]:
    actions = []
    if fax.direction is Direction.OUTBOUND and fax.status in (
        FaxStatus.FAILED,
        FaxStatus.COMPLETED,
    ):
        actions.append("resend")
    if fax.status in _CANCELLABLE:
        actions.append("cancel")
    if fax.status is not FaxStatus.PROCESSING:
        actions.append("delete")
    return actions


async def fax_page(request: Request) -> Response:
    fax = await _fax(request)
    store = console_of(request).api.store
    attempts = await store.fax_attempts(fax.id)
    notices = await store.fax_notifications(fax.id)
    has_tiff = await store.fax_document(fax.id, "tiff") is not None
    context = {
        "fax": fax,
        "attempts": attempts,
        "notices": notices,
        "pages": range(1, (fax.pages or 0) + 1) if has_tiff else range(0),
        "has_pdf": await store.fax_document(fax.id, "pdf") is not None,
        "has_tiff": has_tiff,
        "actions": _allowed(fax),
        "done": request.query_params.get("done", "")[:20],
    }
    return render(request, "fax.html", context)


async def page_image(request: Request) -> Response:
    fax = await _fax(request)
    page = int(request.path_params["page"])
    if page < 1 or page > (fax.pages or 0):
        raise Refused(404, "The fax has no such page.")
    console = console_of(request)
    key = (fax.id, fax.modified, page - 1)
    png = console.thumbnails.cached(key)
    if png is None:
        document = await console.api.store.fax_document(fax.id, "tiff")
        if document is None:
            raise Refused(404, "The fax's page images are not stored (yet, or any more).")
        try:
            png = await console.thumbnails.page(key, document.data)
        except (NotFoundError, OSError) as exc:
            raise Refused(404, "This page cannot be shown.") from exc
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})


async def download(request: Request) -> Response:
    fax = await _fax(request)
    kind = str(request.path_params["kind"])
    if kind not in _MEDIA:
        raise Refused(404, "No such download.")
    document = await console_of(request).api.store.fax_document(fax.id, kind)
    if document is None:
        raise Refused(404, f"This fax has no {kind.upper()} stored.")
    disposition = f'attachment; filename="fax-{fax.id}.{"tif" if kind == "tiff" else "pdf"}"'
    return Response(
        document.data, media_type=_MEDIA[kind], headers={"Content-Disposition": disposition}
    )


async def confirm(request: Request) -> Response:
    fax = await _fax(request)
    action = str(request.path_params["action"])
    if action not in _allowed(fax):
        raise Refused(409, f"This fax cannot be {action}ed now (it is {fax.status.value}).")
    return render(request, "confirm.html", {"fax": fax, "action": action, "what": ACTIONS[action]})


async def act(request: Request) -> Response:
    await form_of(request)
    fax = await _fax(request)
    action = str(request.path_params["action"])
    if action not in _allowed(fax):
        raise Refused(409, f"This fax cannot be {action}ed now (it is {fax.status.value}).")
    console = console_of(request)
    store = console.api.store
    try:
        if action == "resend":
            new_id = await _resend(request, fax)
            return redirect(f"/faxes/{new_id}?done=resent")
        if action == "cancel":
            await store.cancel_fax(fax.id)
            return redirect(f"/faxes/{fax.id}?done=cancelled")
        await store.delete_fax(fax.id, fax.account_id)
    except ConflictError as exc:
        raise Refused(409, f"The fax changed meanwhile: {exc}") from exc
    except GatewayError as exc:
        raise Refused(400, str(exc)) from exc
    return redirect(f"/folders/{fax.folder}?account={fax.account_id}&done=deleted")


async def _resend(request: Request, fax: Fax) -> str:
    """The API's resubmit with no overrides: a copy of the job, its original document."""
    console = console_of(request)
    store = console.api.store
    job = intake.copy_of(fax)  # resubmit with no overrides: the same job, counts cleared
    intake.require_numbers(job)
    new_id = await store.create_fax_copy(job, fax.id, "original")
    console.api.on_created()
    return new_id
