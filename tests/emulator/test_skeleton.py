import httpx
import pytest


@pytest.mark.asyncio
async def test_unknown_route_answers_anaplan_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/2/0/no/such/route")
    assert response.status_code == 404
    body = response.json()
    assert body["status"] == {"code": 404, "message": "Not Found"}
    assert body["path"] == "/2/0/no/such/route"


def test_live_server_serves_over_loopback(live_server) -> None:
    response = httpx.get(f"{live_server.url}/2/0/no/such/route")
    assert response.status_code == 404
