"""Proxy credentials: checks of one credential arriving together run bcrypt once (a room of
phones joining at once), wrong passwords are never remembered, a re-read file forgets."""

import asyncio

import bcrypt

from gazeback.capture.deviceauth import DeviceAuth


def hashed(password: bytes) -> bytes:
    return bcrypt.hashpw(password, bcrypt.gensalt(4))


async def test_checks_arriving_together_share_one_bcrypt_run():
    auth = DeviceAuth()
    auth.users = {"phone": hashed(b"right"), "tv": hashed(b"other")}
    results = await asyncio.gather(
        *(auth._valid("phone", "right") for _ in range(12)),
        *(auth._valid("phone", "wrong") for _ in range(5)),
        auth._valid("tv", "other"),
        auth._valid("nobody", "right"),
    )
    assert results == [True] * 12 + [False] * 5 + [True, False]
    assert auth.checks_run == 3  # phone/right, phone/wrong, tv/other; an unknown user: none
    assert auth._pending == {}
    assert await auth._valid("phone", "right") and auth.checks_run == 3  # remembered
    assert not await auth._valid("phone", "wrong")
    assert auth.checks_run == 4  # a wrong password is checked again, never remembered


async def test_a_waiter_going_away_does_not_cancel_the_others():
    auth = DeviceAuth()
    auth.users = {"phone": hashed(b"right")}
    first = asyncio.ensure_future(auth._valid("phone", "right"))
    second = asyncio.ensure_future(auth._valid("phone", "right"))
    await asyncio.sleep(0)
    first.cancel()  # its client hung up while bcrypt ran
    assert await second is True
    assert auth.checks_run == 1
    assert await auth._valid("phone", "right") and auth.checks_run == 1


async def test_a_password_file_changed_during_a_check_is_not_remembered():
    auth = DeviceAuth()
    auth.users = {"phone": hashed(b"old")}
    check = asyncio.ensure_future(auth._valid("phone", "old"))
    await asyncio.sleep(0)
    auth.users = {"phone": hashed(b"new")}  # what configure() does on a new file
    auth._verified.clear()
    auth._pending.clear()
    assert await check is True  # it was right when asked
    assert not await auth._valid("phone", "old")  # but the new file is checked, not a memory
    assert auth.checks_run == 2
