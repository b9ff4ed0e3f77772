"""Each request the ops middleware sees runs in its own container scope: one session per request."""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi import Depends, FastAPI
from sqlalchemy import text
from sqlalchemy.orm import Session

from buttress.container import get_container
from buttress.db import Database
from buttress.server import install
from tests.server.conftest import client_for

pytestmark = pytest.mark.usefixtures("isolated_settings")


def request_session() -> Session:
    return get_container().resolve(Session)


def notes_app(seen: list[Session]) -> FastAPI:
    app = FastAPI()

    @app.post("/notes/{body}")
    def add(
        body: str,
        session: Annotated[Session, Depends(request_session)],
        again: Annotated[Session, Depends(request_session, use_cache=False)],
    ) -> dict[str, bool]:
        seen.append(session)
        session.execute(text("INSERT INTO notes (body) VALUES (:body)"), {"body": body})
        if body != "draft":  # a draft is not committed: the scope's exit rolls it back
            session.commit()
        return {"same": session is again}

    install(app)
    return app


async def test_each_request_gets_one_session_and_uncommitted_work_is_rolled_back() -> None:
    db = get_container().resolve(Database)
    with db.session() as setup:
        setup.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
    seen: list[Session] = []
    async with client_for(notes_app(seen)) as client:
        for body in ("first", "draft", "second"):
            response = await client.post(f"/notes/{body}")
            assert response.json() == {"same": True}  # every resolve in the request: the same session
    assert len({id(session) for session in seen}) == 3  # one per request
    with db.session() as check:
        assert check.execute(text("SELECT body FROM notes ORDER BY id")).scalars().all() == [
            "first",
            "second",
        ]
    assert db.engine.pool.checkedout() == 0
