"""The "Anaplan model" extra link: a button on the task that opens the model in Anaplan.

In Airflow 3 the UI never imports link classes: the worker calls :meth:`AnaplanModelLink.get_link` when the task
finishes a try (also when it defers) and stores the URL in the XCom ``_link_AnaplanModelLink``, which the UI reads.
``get_link`` itself reads what the operator recorded with :meth:`AnaplanModelLink.persist` during ``execute()``:
the model's ``modelUrl`` as the API describes it (``https://<region>.app.anaplan.com/anaplan/framework.jsp?
selectedWorkspaceId=…&selectedModelId=…``), or the same URL built from the ids on the default UI host.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlencode, urlsplit

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey

log = logging.getLogger(__name__)

#: Anaplan's UI host when the API did not tell the model's own (``modelUrl``); tenants elsewhere use their region.
DEFAULT_UI_ORIGIN = "https://us1a.app.anaplan.com"
MODEL_PAGE = "/anaplan/framework.jsp"
_HEX32 = re.compile(r"[0-9A-Fa-f]{32}")


def model_url(workspace_id: str, model_id: str, origin: str = DEFAULT_UI_ORIGIN) -> str:
    """The URL that opens a model in Anaplan's UI (the form of the API's ``modelUrl``)."""
    query = urlencode({"selectedWorkspaceId": workspace_id, "selectedModelId": model_id})
    return f"{origin.rstrip('/')}{MODEL_PAGE}?{query}"


def _is_web_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _is_id(value: Any) -> bool:
    return isinstance(value, str) and bool(_HEX32.fullmatch(value))


class AnaplanModelLink(BaseOperatorLink):
    """Operator extra link "Anaplan model".

    Add ``operator_extra_links = (AnaplanModelLink(),)`` to an operator and call
    ``AnaplanModelLink.persist(context, model=...)`` in ``execute()`` once the model is known (before deferring).
    Without a persisted value, an operator whose ``workspace_id`` and ``model_id`` attributes are ids still gets a
    link on the default UI host; otherwise the link is empty. ``get_link`` never raises.
    """

    name = "Anaplan model"
    #: The XCom key under which :meth:`persist` records the model (a small dict).
    key: ClassVar[str] = "anaplan_model"

    @classmethod
    def build(
        cls,
        *,
        model: Any = None,
        url: str | None = None,
        workspace_id: str | None = None,
        model_id: str | None = None,
        origin: str = DEFAULT_UI_ORIGIN,
    ) -> dict[str, Any] | None:
        """The value to persist: ``{"url", "workspace_id", "model_id"}`` from a client ``Model`` (its ``modelUrl``),
        a URL, or the ids (a URL on ``origin``); None when none of them is usable."""
        if model is not None:
            url = url or getattr(model, "model_url", None)
            workspace_id = workspace_id or getattr(model, "current_workspace_id", None)
            model_id = model_id or getattr(model, "id", None)
        if not _is_web_url(url):
            url = model_url(workspace_id, model_id, origin) if _is_id(workspace_id) and _is_id(model_id) else None
        if url is None:
            return None
        return {"url": url, "workspace_id": workspace_id, "model_id": model_id}

    @classmethod
    def persist(cls, context: Context, **kwargs: Any) -> str | None:
        """Record the model's URL in XCom for the link (see :meth:`build` for the arguments); returns the URL.

        Best effort: a failure is logged and never fails the task.
        """
        value = cls.build(**kwargs)
        if value is None:
            log.debug("No Anaplan model URL to record for the extra link")
            return None
        try:
            context["ti"].xcom_push(key=cls.key, value=value)
        except Exception:
            log.warning("Could not record the Anaplan model link", exc_info=True)
            return None
        return value["url"]

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        try:
            from airflow.sdk.execution_time.xcom import XCom

            value = XCom.get_value(ti_key=ti_key, key=self.key)
        except Exception:
            log.debug("Could not read the Anaplan model link from XCom", exc_info=True)
            value = None
        if isinstance(value, dict) and _is_web_url(value.get("url")):
            return value["url"]
        if _is_web_url(value):
            return value  # type: ignore[return-value]
        workspace_id = getattr(operator, "workspace_id", None)
        model_id = getattr(operator, "model_id", None)
        if _is_id(workspace_id) and _is_id(model_id):
            return model_url(workspace_id, model_id)  # type: ignore[arg-type]
        return ""


__all__ = ["DEFAULT_UI_ORIGIN", "AnaplanModelLink", "model_url"]
