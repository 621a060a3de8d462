"""``ssrl-serve``: start the service. Flags are generated from ``service.settings.Settings``."""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from pydantic_settings import CliApp

from service.settings import Settings

if TYPE_CHECKING:
    import uvicorn

logger = logging.getLogger("service")


def _quiet_environment() -> None:
    """Defaults that keep vLLM offline and quiet unless the operator says otherwise."""
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("VLLM_DO_NOT_TRACK", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def uvicorn_config(settings: Settings, app: Any) -> uvicorn.Config:
    """uvicorn's settings for the app: address, log level, graceful shutdown and keep-alive."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=int(settings.shutdown_timeout),
        timeout_keep_alive=int(settings.keep_alive_timeout),
        access_log=settings.log_level == "debug",
    )


def serve(settings: Settings) -> int:
    import uvicorn

    from service.app import create_app

    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    server: uvicorn.Server | None = None
    failed = False

    def stop_on_failure() -> None:
        """The engine failed to load or died: stop, and exit non-zero for the supervisor."""
        nonlocal failed
        failed = True
        if server is not None:
            server.should_exit = True

    app = create_app(settings, on_load_failure=stop_on_failure, on_engine_death=stop_on_failure)
    server = uvicorn.Server(uvicorn_config(settings, app))
    logger.info("serving %s on http://%s:%d", settings.resolved_model_name(), settings.host, settings.port)
    server.run()
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    _quiet_environment()
    settings = CliApp.run(Settings, cli_args=sys.argv[1:] if argv is None else argv)
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
