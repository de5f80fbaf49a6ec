"""The library's asyncio flavour (AsyncTwilioHttpClient over aiohttp) against Parley."""

import asyncio

from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from conftest import ACCOUNT_SID, AUTH_TOKEN, PARLEY_URL, unique


def test_async_create_page_fetch_delete():
    async def scenario():
        http_client = AsyncTwilioHttpClient()
        client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http_client)
        client.chat.base_url = PARLEY_URL
        try:
            svc = await client.chat.v2.services.create_async(friendly_name=unique("async"))
            users = client.chat.v2.services(svc.sid).users
            made = [await users.create_async(identity=f"a{i}") for i in range(5)]
            listed = await users.list_async(page_size=2)  # 3 pages, followed asynchronously
            assert [u.sid for u in listed] == [u.sid for u in made]
            fetched = await client.chat.v2.services(svc.sid).users("a3").fetch_async()
            assert fetched.sid == made[3].sid
            assert await client.chat.v2.services(svc.sid).delete_async() is True
            try:
                await client.chat.v2.services(svc.sid).fetch_async()
            except TwilioRestException as exc:
                assert exc.status == 404 and exc.code == 20404
            else:
                raise AssertionError("fetch of a deleted service succeeded")
        finally:
            await http_client.close()

    asyncio.run(scenario())
