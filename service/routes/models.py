"""GET /v1/models and /v1/models/{model}."""

from __future__ import annotations

from fastapi import APIRouter

from service.errors import NotFoundError
from service.protocol import ModelCard, ModelList
from service.state import Authenticated, ServiceState, State

router = APIRouter(dependencies=[Authenticated])


def _card(state: ServiceState) -> ModelCard:
    length = state.engine.max_model_len if state.engine is not None else None
    return ModelCard(id=state.model_name, created=state.created, max_model_len=length)


@router.get("/v1/models", response_model=ModelList)
async def list_models(state: State) -> ModelList:
    return ModelList(data=[_card(state)])


@router.get("/v1/models/{model:path}", response_model=ModelCard)
async def get_model(model: str, state: State) -> ModelCard:
    if model != state.model_name:
        raise NotFoundError(f"the model '{model}' does not exist", param="model", code="model_not_found")
    return _card(state)
