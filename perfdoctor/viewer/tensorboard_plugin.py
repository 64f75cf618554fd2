"""The perfdoctor tab in TensorBoard: a dynamic plugin, found through the `tensorboard_plugins`
entry point (setup.cfg), that serves the viewer (app.py) from the package at
/data/plugin/perfdoctor/. TensorBoard loads `index.js` into the tab's frame; it opens the
viewer's page, which lists the runs under the logdir.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tensorboard.plugins import base_plugin

from .app import ViewerApp

PLUGIN_NAME = "perfdoctor"


class PerfdoctorPlugin(base_plugin.TBPlugin):
    plugin_name = PLUGIN_NAME

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        logdir = getattr(context, "logdir", "") or ""
        # A remote logdir (gs://, s3://) has no run directories perfdoctor can read.
        self._app = ViewerApp(Path(logdir) if logdir and "://" not in logdir else Path("/nonexistent-logdir"),
                              prefix=f"/data/plugin/{PLUGIN_NAME}")

    def get_plugin_apps(self) -> dict[str, Any]:
        return {"/*": self._app}

    def is_active(self) -> bool:
        return bool(self._app.runs())

    def frontend_metadata(self) -> Any:
        # The tab refreshes itself (a run in progress reloads every 10 s); TensorBoard's reload
        # would only restart it.
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name="perfdoctor", disable_reload=True)
